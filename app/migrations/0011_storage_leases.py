"""The lease `holdfast storage migrate` and `holdfast storage orphans --delete` hold while they
run (table `storage_leases`), so that neither runs twice at once nor beside the other."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0010_media')]

    initial = False

    operations = [
        ops.CreateModel(
            name='StorageLease',
            fields=[
                ('name', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ('holder', fields.CharField(max_length=200)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'storage_leases', 'app': 'models', 'pk_attr': 'name', 'table_description': 'Work on the stored objects that must never run twice at once, held by one process'},
            bases=['Model'],
        ),
    ]
