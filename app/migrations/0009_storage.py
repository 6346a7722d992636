"""Records of stored objects (which backend holds each, its size and SHA-256) and of storage
moves between backends."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from app.ids import new_id
from app.models.storage import MoveState
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0008_job_finished_at')]

    initial = False

    operations = [
        ops.CreateModel(
            name='StorageMove',
            fields=[
                ('id', fields.BigIntField(primary_key=True, generated=False, default=new_id, unique=True, db_index=True)),
                ('target', fields.CharField(max_length=64)),
                ('from_default', fields.CharField(max_length=64)),
                ('state', fields.CharEnumField(default=MoveState.RUNNING, description='RUNNING: running\nFINISHED: finished\nABANDONED: abandoned', enum_type=MoveState, max_length=16)),
                ('started_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'storage_moves', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A move of every object to the backend `target`, started while `from_default` was the'},
            bases=['SnowflakeModel'],
        ),
        ops.CreateModel(
            name='StoredObject',
            fields=[
                ('id', fields.BigIntField(primary_key=True, generated=False, default=new_id, unique=True, db_index=True)),
                ('key', fields.CharField(unique=True, max_length=512)),
                ('backend', fields.CharField(max_length=64)),
                ('size', fields.BigIntField()),
                ('sha256', fields.CharField(max_length=64)),
                ('content_type', fields.CharField(max_length=100)),
                ('owner', fields.ForeignKeyField('models.User', source_field='owner_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'stored_objects', 'app': 'models', 'indexes': [Index(fields=['backend', 'id'])], 'pk_attr': 'id', 'table_description': 'One object in one storage backend, with what it must be: its size and whole-object'},
            bases=['SnowflakeModel'],
        ),
    ]
