"""The jobs table: the transactional outbox of background work (app/jobs)."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from app.ids import new_id
from app.models.system import JobState
from orjson import loads
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0006_node_leases')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Job',
            fields=[
                ('id', fields.BigIntField(primary_key=True, default=new_id, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=100)),
                ('payload', fields.JSONField(encoder=JSON_DUMPS, decoder=loads)),
                ('state', fields.CharEnumField(default=JobState.PENDING, description='PENDING: pending\nRUNNING: running\nDONE: done\nDEAD: dead', enum_type=JobState, max_length=16)),
                ('attempts', fields.IntField(default=0)),
                ('run_after', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('lease_owner', fields.CharField(null=True, max_length=200)),
                ('lease_expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_error', fields.CharField(null=True, max_length=1000)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'jobs', 'app': 'models', 'indexes': [Index(fields=['state', 'run_after'])], 'pk_attr': 'id', 'table_description': "Work a committed change owes (the transactional outbox): written in the change's own"},
            bases=['SnowflakeModel'],
        ),
    ]
