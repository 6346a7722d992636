"""The accounts each earlier version of a post mentioned, so that a DIRECT post's history
shows each version only to its own audience. Versions kept before this stay NULL (only
their author sees them)."""

from orjson import loads
from tortoise import fields, migrations
from tortoise.fields.data import JSON_DUMPS
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0003_display_name_key")]

    initial = False

    operations = [
        ops.AddField(
            model_name="PostEdit",
            name="mentioned_ids",
            field=fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads),
        ),
    ]
