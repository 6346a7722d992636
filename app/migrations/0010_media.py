"""Uploaded media (table `media`) and the avatar and header of accounts."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from app.ids import new_id
from app.models.media import MediaPurpose, MediaState
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0009_storage')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Media',
            fields=[
                ('id', fields.BigIntField(primary_key=True, generated=False, default=new_id, unique=True, db_index=True)),
                ('owner', fields.ForeignKeyField('models.User', source_field='owner_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('purpose', fields.CharEnumField(description='POST: post\nAVATAR: avatar\nHEADER: header', enum_type=MediaPurpose, max_length=16)),
                ('state', fields.CharEnumField(default=MediaState.PENDING, description='PENDING: pending\nPROCESSING: processing\nREADY: ready\nFAILED: failed', enum_type=MediaState, max_length=16)),
                ('error_code', fields.CharField(null=True, max_length=32)),
                ('error_message', fields.CharField(null=True, max_length=300)),
                ('upload_key', fields.CharField(max_length=512)),
                ('upload_backend', fields.CharField(max_length=64)),
                ('declared_type', fields.CharField(max_length=100)),
                ('declared_size', fields.BigIntField()),
                ('alt_text', fields.CharField(default='', max_length=1500)),
                ('focus_x', fields.FloatField(default=0.0)),
                ('focus_y', fields.FloatField(default=0.0)),
                ('width', fields.IntField(null=True)),
                ('height', fields.IntField(null=True)),
                ('blurhash', fields.CharField(null=True, max_length=100)),
                ('animated', fields.BooleanField(default=False)),
                ('full', fields.ForeignKeyField('models.StoredObject', source_field='full_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('thumb', fields.ForeignKeyField('models.StoredObject', source_field='thumb_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('post', fields.ForeignKeyField('models.Post', source_field='post_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('position', fields.SmallIntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'media', 'app': 'models', 'indexes': [Index(fields=['post_id', 'position']), Index(fields=['owner_id', 'id']), Index(fields=['state', 'id'])], 'pk_attr': 'id', 'table_description': 'One uploaded image. The original bytes wait under `upload_key` in `upload_backend`'},
            bases=['SnowflakeModel'],
        ),
        ops.AddField(
            model_name='User',
            name='avatar',
            field=fields.ForeignKeyField('models.Media', source_field='avatar_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL),
        ),
        ops.AddField(
            model_name='User',
            name='header',
            field=fields.ForeignKeyField('models.Media', source_field='header_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL),
        ),
    ]
