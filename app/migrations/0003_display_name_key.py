"""A case-folded display name for prefix search (SQLite's LOWER folds ASCII only)."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


async def _index(apps, schema_editor):
    if schema_editor.client.capabilities.dialect == "postgres":
        await schema_editor.client.execute_script(
            "CREATE INDEX users_display_name_prefix ON users (display_name_key text_pattern_ops)"
        )


async def _drop_index(apps, schema_editor):
    if schema_editor.client.capabilities.dialect == "postgres":
        await schema_editor.client.execute_script("DROP INDEX IF EXISTS users_display_name_prefix")


class Migration(migrations.Migration):
    dependencies = [("models", "0002_search")]

    initial = False

    operations = [
        ops.AddField(
            model_name="User",
            name="display_name_key",
            field=fields.CharField(default="", db_default="", max_length=200),
        ),
        # Existing rows: as close as SQL gets; new and edited names are folded by the app.
        ops.RunSQL(
            "UPDATE users SET display_name_key = LOWER(display_name)",
            reverse_sql="UPDATE users SET display_name_key = ''",
        ),
        ops.RunPython(_index, _drop_index),
    ]
