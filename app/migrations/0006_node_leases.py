"""Leases of snowflake node ids, so that live processes never share one."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0005_fold_emails')]

    initial = False

    operations = [
        ops.CreateModel(
            name='NodeLease',
            fields=[
                ('node_id', fields.IntField(primary_key=True, unique=True, db_index=True)),
                ('holder', fields.CharField(max_length=200)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'node_leases', 'app': 'models', 'pk_attr': 'node_id', 'table_description': 'A snowflake node id held by one live process until `expires_at` (renewed while it runs),'},
            bases=['Model'],
        ),
    ]
