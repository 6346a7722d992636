from tortoise import migrations
from tortoise.migrations import operations as ops
from app.ids import new_id
from app.models.account import Role
from app.models.post import Visibility
from app.models.timeline import NotificationKind
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.BigIntField(primary_key=True, generated=False, default=new_id)),
                ('username', fields.CharField(max_length=30)),
                ('username_key', fields.CharField(unique=True, max_length=30)),
                ('email', fields.CharField(unique=True, max_length=254)),
                ('password_hash', fields.CharField(max_length=255)),
                ('display_name', fields.CharField(max_length=50)),
                ('bio', fields.CharField(default='', max_length=300)),
                ('is_locked', fields.BooleanField(default=False)),
                ('role', fields.CharEnumField(default=Role.USER, description='USER: user\nMODERATOR: moderator\nADMIN: admin', enum_type=Role, max_length=16)),
                ('follower_count', fields.IntField(default=0)),
                ('following_count', fields.IntField(default=0)),
                ('notifications_read_id', fields.BigIntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'users', 'app': 'models', 'pk_attr': 'id'},
            bases=['SnowflakeModel'],
        ),
        ops.CreateModel(
            name='Block',
            fields=[
                ('id', fields.BigIntField(primary_key=True, generated=False, default=new_id)),
                ('blocker', fields.ForeignKeyField('models.User', source_field='blocker_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('blocked', fields.ForeignKeyField('models.User', source_field='blocked_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
            ],
            options={'table': 'blocks', 'app': 'models', 'unique_together': (('blocker_id', 'blocked_id'),), 'indexes': [Index(fields=['blocked_id', 'blocker_id'])], 'pk_attr': 'id'},
            bases=['SnowflakeModel'],
        ),
        ops.CreateModel(
            name='Follow',
            fields=[
                ('id', fields.BigIntField(primary_key=True, generated=False, default=new_id)),
                ('follower', fields.ForeignKeyField('models.User', source_field='follower_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('followee', fields.ForeignKeyField('models.User', source_field='followee_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
            ],
            options={'table': 'follows', 'app': 'models', 'unique_together': (('follower_id', 'followee_id'),), 'indexes': [Index(fields=['followee_id', 'id']), Index(fields=['follower_id', 'id'])], 'pk_attr': 'id'},
            bases=['SnowflakeModel'],
        ),
        ops.CreateModel(
            name='FollowRequest',
            fields=[
                ('id', fields.BigIntField(primary_key=True, generated=False, default=new_id)),
                ('requester', fields.ForeignKeyField('models.User', source_field='requester_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('target', fields.ForeignKeyField('models.User', source_field='target_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
            ],
            options={'table': 'follow_requests', 'app': 'models', 'unique_together': (('requester_id', 'target_id'),), 'indexes': [Index(fields=['target_id', 'id'])], 'pk_attr': 'id'},
            bases=['SnowflakeModel'],
        ),
        ops.CreateModel(
            name='Mute',
            fields=[
                ('id', fields.BigIntField(primary_key=True, generated=False, default=new_id)),
                ('muter', fields.ForeignKeyField('models.User', source_field='muter_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('muted', fields.ForeignKeyField('models.User', source_field='muted_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
            ],
            options={'table': 'mutes', 'app': 'models', 'unique_together': (('muter_id', 'muted_id'),), 'pk_attr': 'id'},
            bases=['SnowflakeModel'],
        ),
        ops.CreateModel(
            name='Post',
            fields=[
                ('id', fields.BigIntField(primary_key=True, generated=False, default=new_id)),
                ('author', fields.ForeignKeyField('models.User', source_field='author_id', db_constraint=True, to_field='id', related_name='posts', on_delete=OnDelete.CASCADE)),
                ('text', fields.TextField(unique=False)),
                ('content_warning', fields.CharField(default='', max_length=200)),
                ('visibility', fields.CharEnumField(default=Visibility.PUBLIC, description='PUBLIC: public\nFOLLOWERS: followers\nSUBSCRIBERS: subscribers\nDIRECT: direct', enum_type=Visibility, max_length=16)),
                ('reply_to', fields.ForeignKeyField('models.Post', source_field='reply_to_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('quote_of', fields.ForeignKeyField('models.Post', source_field='quote_of_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('entities', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('like_count', fields.IntField(default=0)),
                ('repost_count', fields.IntField(default=0)),
                ('reply_count', fields.IntField(default=0)),
                ('quote_count', fields.IntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('edited_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('deleted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'posts', 'app': 'models', 'indexes': [Index(fields=['author_id', 'id']), Index(fields=['reply_to_id', 'id']), Index(fields=['visibility', 'id'])], 'pk_attr': 'id'},
            bases=['SnowflakeModel'],
        ),
        ops.CreateModel(
            name='Bookmark',
            fields=[
                ('id', fields.BigIntField(primary_key=True, generated=False, default=new_id)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('post', fields.ForeignKeyField('models.Post', source_field='post_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
            ],
            options={'table': 'bookmarks', 'app': 'models', 'unique_together': (('user_id', 'post_id'),), 'indexes': [Index(fields=['user_id', 'id'])], 'pk_attr': 'id'},
            bases=['SnowflakeModel'],
        ),
        ops.CreateModel(
            name='HomeEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('owner', fields.ForeignKeyField('models.User', source_field='owner_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('entry_id', fields.BigIntField()),
                ('post', fields.ForeignKeyField('models.Post', source_field='post_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('reposter', fields.ForeignKeyField('models.User', source_field='reposter_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('source', fields.ForeignKeyField('models.User', source_field='source_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
            ],
            options={'table': 'home_entries', 'app': 'models', 'unique_together': (('owner_id', 'entry_id'),), 'indexes': [Index(fields=['owner_id', 'source_id'])], 'pk_attr': 'id', 'table_description': "One post in one account's home timeline, written when the post (or a repost of it) is"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Like',
            fields=[
                ('id', fields.BigIntField(primary_key=True, generated=False, default=new_id)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('post', fields.ForeignKeyField('models.Post', source_field='post_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
            ],
            options={'table': 'likes', 'app': 'models', 'unique_together': (('user_id', 'post_id'),), 'indexes': [Index(fields=['user_id', 'id']), Index(fields=['post_id'])], 'pk_attr': 'id'},
            bases=['SnowflakeModel'],
        ),
        ops.CreateModel(
            name='Mention',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('post', fields.ForeignKeyField('models.Post', source_field='post_id', db_constraint=True, to_field='id', related_name='mentions', on_delete=OnDelete.CASCADE)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
            ],
            options={'table': 'mentions', 'app': 'models', 'unique_together': (('post_id', 'user_id'),), 'indexes': [Index(fields=['user_id', 'post_id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Notification',
            fields=[
                ('id', fields.BigIntField(primary_key=True, generated=False, default=new_id)),
                ('recipient', fields.ForeignKeyField('models.User', source_field='recipient_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('actor', fields.ForeignKeyField('models.User', source_field='actor_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='FOLLOW: follow\nFOLLOW_REQUEST: follow_request\nLIKE: like\nREPOST: repost\nREPLY: reply\nMENTION: mention\nQUOTE: quote', enum_type=NotificationKind, max_length=16)),
                ('post', fields.ForeignKeyField('models.Post', source_field='post_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
            ],
            options={'table': 'notifications', 'app': 'models', 'indexes': [Index(fields=['recipient_id', 'id'])], 'pk_attr': 'id'},
            bases=['SnowflakeModel'],
        ),
        ops.CreateModel(
            name='PostEdit',
            fields=[
                ('id', fields.BigIntField(primary_key=True, generated=False, default=new_id)),
                ('post', fields.ForeignKeyField('models.Post', source_field='post_id', db_constraint=True, to_field='id', related_name='edits', on_delete=OnDelete.CASCADE)),
                ('text', fields.TextField(unique=False)),
                ('content_warning', fields.CharField(default='', max_length=200)),
                ('published_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'post_edits', 'app': 'models', 'indexes': [Index(fields=['post_id', 'id'])], 'pk_attr': 'id', 'table_description': 'An earlier version of a post, kept when it is edited.'},
            bases=['SnowflakeModel'],
        ),
        ops.CreateModel(
            name='PostTag',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('post', fields.ForeignKeyField('models.Post', source_field='post_id', db_constraint=True, to_field='id', related_name='tags', on_delete=OnDelete.CASCADE)),
                ('tag', fields.CharField(max_length=100)),
            ],
            options={'table': 'post_tags', 'app': 'models', 'unique_together': (('post_id', 'tag'),), 'indexes': [Index(fields=['tag', 'post_id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Repost',
            fields=[
                ('id', fields.BigIntField(primary_key=True, generated=False, default=new_id)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('post', fields.ForeignKeyField('models.Post', source_field='post_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
            ],
            options={'table': 'reposts', 'app': 'models', 'unique_together': (('user_id', 'post_id'),), 'indexes': [Index(fields=['post_id'])], 'pk_attr': 'id'},
            bases=['SnowflakeModel'],
        ),
        ops.CreateModel(
            name='Session',
            fields=[
                ('id', fields.BigIntField(primary_key=True, generated=False, default=new_id)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='sessions', on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('last_used_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('user_agent', fields.CharField(default='', max_length=255)),
            ],
            options={'table': 'sessions', 'app': 'models', 'pk_attr': 'id', 'table_description': 'One sign-in: a family of refresh tokens, each used once. Revoking it signs it out.'},
            bases=['SnowflakeModel'],
        ),
        ops.CreateModel(
            name='RefreshToken',
            fields=[
                ('id', fields.BigIntField(primary_key=True, generated=False, default=new_id)),
                ('session', fields.ForeignKeyField('models.Session', source_field='session_id', db_constraint=True, to_field='id', related_name='refresh_tokens', on_delete=OnDelete.CASCADE)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'refresh_tokens', 'app': 'models', 'pk_attr': 'id'},
            bases=['SnowflakeModel'],
        ),
    ]
