from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0013_fleet')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PersistedOperation',
            fields=[
                ('sha256', fields.CharField(primary_key=True, unique=True, db_index=True, description='hex, lower case', max_length=64)),
                ('document', fields.TextField(unique=False)),
                ('operation_names', fields.JSONField(default=list, description='the named operations in the document', encoder=JSON_DUMPS, decoder=loads)),
                ('registered_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'persisted_operations', 'app': 'models', 'pk_attr': 'sha256', 'table_description': 'A registered document, exactly as clients send it (the hash is of these bytes).'},
            bases=['Model'],
        ),
    ]
