from tortoise import migrations
from tortoise.migrations import operations as ops
from app.ids import new_id
from app.models.billing import ActionRequired, PaymentStatus, SubscriptionStatus
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0011_storage_leases')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PaymentEventRecord',
            fields=[
                ('id', fields.BigIntField(primary_key=True, default=new_id, generated=False, unique=True, db_index=True)),
                ('provider', fields.CharField(max_length=64)),
                ('event_id', fields.CharField(max_length=255)),
                ('kind', fields.CharField(max_length=32)),
                ('occurred_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('charge_id', fields.CharField(null=True, max_length=255)),
                ('reference', fields.CharField(null=True, max_length=64)),
                ('data', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('processed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'payment_events', 'app': 'models', 'unique_together': (('provider', 'event_id'),), 'pk_attr': 'id', 'table_description': 'A vendor event received (webhook or reconciliation). Unique per configuration and'},
            bases=['SnowflakeModel'],
        ),
        ops.CreateModel(
            name='PaymentFeed',
            fields=[
                ('provider', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('cursor', fields.CharField(null=True, max_length=500)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'payment_feeds', 'app': 'models', 'pk_attr': 'provider', 'table_description': 'Where reconciliation (`holdfast payments reconcile`) resumes for each configuration.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Plan',
            fields=[
                ('id', fields.BigIntField(primary_key=True, default=new_id, generated=False, unique=True, db_index=True)),
                ('code', fields.CharField(unique=True, max_length=64)),
                ('name', fields.CharField(max_length=100)),
                ('description', fields.CharField(default='', max_length=500)),
                ('interval', fields.CharField(max_length=8)),
                ('prices', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('perks', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('vendor_ids', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('active', fields.BooleanField(default=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'plans', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A plan the operator offers (`HOLDFAST_PAYMENTS__PLANS`, copied here by'},
            bases=['SnowflakeModel'],
        ),
        ops.CreateModel(
            name='Subscription',
            fields=[
                ('id', fields.BigIntField(primary_key=True, default=new_id, generated=False, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('plan', fields.ForeignKeyField('models.Plan', source_field='plan_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('provider', fields.CharField(max_length=64)),
                ('customer_id', fields.CharField(null=True, max_length=255)),
                ('currency', fields.CharField(max_length=3)),
                ('amount', fields.IntField()),
                ('interval', fields.CharField(max_length=8)),
                ('status', fields.CharEnumField(default=SubscriptionStatus.INCOMPLETE, description='INCOMPLETE: incomplete\nACTIVE: active\nPAST_DUE: past_due\nCANCELED: canceled\nEXPIRED: expired', enum_type=SubscriptionStatus, max_length=16)),
                ('current_period_start', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('current_period_end', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('access_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('grace_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('cancel_at_period_end', fields.BooleanField(default=False)),
                ('renewal_failures', fields.IntField(default=0)),
                ('complimentary', fields.BooleanField(default=False)),
                ('action_required', fields.CharEnumField(null=True, description='CONFIRM_PAYMENT: confirm_payment\nPAY: pay\nUPDATE_PAYMENT_METHOD: update_payment_method\nSWITCH_PROVIDER: switch_provider', enum_type=ActionRequired, max_length=24)),
                ('switch_to', fields.CharField(null=True, max_length=64)),
                ('replaced_by', fields.ForeignKeyField('models.Subscription', source_field='replaced_by_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('vendor_stopped_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('ended_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'subscriptions', 'app': 'models', 'indexes': [Index(fields=['user_id', 'access_until']), Index(fields=['provider', 'status'])], 'pk_attr': 'id', 'table_description': "One subscriber's subscription to a plan through one payment configuration. A user has"},
            bases=['SnowflakeModel'],
        ),
        ops.CreateModel(
            name='Payment',
            fields=[
                ('id', fields.BigIntField(primary_key=True, default=new_id, generated=False, unique=True, db_index=True)),
                ('subscription', fields.ForeignKeyField('models.Subscription', source_field='subscription_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('provider', fields.CharField(max_length=64)),
                ('charge_id', fields.CharField(null=True, max_length=255)),
                ('amount', fields.IntField()),
                ('currency', fields.CharField(max_length=3)),
                ('renewal', fields.BooleanField(default=False)),
                ('period_start', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('period_end', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('status', fields.CharEnumField(default=PaymentStatus.PENDING, description='PENDING: pending\nSUCCEEDED: succeeded\nFAILED: failed\nCANCELED: canceled', enum_type=PaymentStatus, max_length=16)),
                ('action_kind', fields.CharField(default='none', max_length=32)),
                ('action_url', fields.CharField(null=True, max_length=2000)),
                ('instructions', fields.TextField(null=True, unique=False)),
                ('failure', fields.CharField(null=True, max_length=500)),
                ('confirmed_by', fields.ForeignKeyField('models.User', source_field='confirmed_by_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('started_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('paid_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'payments', 'app': 'models', 'unique_together': (('provider', 'charge_id'),), 'indexes': [Index(fields=['subscription_id', 'id'])], 'pk_attr': 'id', 'table_description': "One period's charge. Its id is the `reference` the processor carries and echoes, so an"},
            bases=['SnowflakeModel'],
        ),
    ]
