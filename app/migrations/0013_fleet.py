from tortoise import migrations
from tortoise.migrations import operations as ops
from app.ids import new_id
from orjson import loads
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0012_billing')]

    initial = False

    operations = [
        ops.CreateModel(
            name='FleetNode',
            fields=[
                ('id', fields.BigIntField(primary_key=True, default=new_id, unique=True, db_index=True, generated=False)),
                ('compute', fields.CharField(max_length=64)),
                ('external_id', fields.CharField(description="the vendor's node id", max_length=200)),
                ('name', fields.CharField(max_length=200)),
                ('role', fields.CharField(max_length=16)),
                ('state', fields.CharField(description='providers.compute.base.NodeState', max_length=16)),
                ('size', fields.CharField(null=True, max_length=200)),
                ('image', fields.CharField(null=True, max_length=200)),
                ('location', fields.CharField(null=True, max_length=200)),
                ('public_ips', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('private_ips', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('tags', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('seen_at', fields.DatetimeField(description='when the vendor last reported it', auto_now=False, auto_now_add=False)),
                ('destroyed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'fleet_nodes', 'app': 'models', 'unique_together': (('compute', 'external_id'),), 'indexes': [Index(fields=['compute', 'role'])], 'pk_attr': 'id', 'table_description': 'One node we created at a compute configuration (`compute.providers.<compute>`), as last'},
            bases=['SnowflakeModel'],
        ),
    ]
