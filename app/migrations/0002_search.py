"""Full-text search over posts: a GIN index on a tsvector expression on PostgreSQL, an FTS5
table kept in step by triggers on SQLite."""

from tortoise import migrations
from tortoise.migrations import operations as ops

_POSTGRES = [
    "CREATE INDEX posts_text_search ON posts USING GIN (to_tsvector('simple', text))",
    "CREATE INDEX users_username_prefix ON users (username_key text_pattern_ops)",
]
_POSTGRES_REVERSE = [
    "DROP INDEX IF EXISTS posts_text_search",
    "DROP INDEX IF EXISTS users_username_prefix",
]

_SQLITE = [
    "CREATE VIRTUAL TABLE posts_fts USING fts5(text, content='posts', content_rowid='id')",
    "INSERT INTO posts_fts(rowid, text) SELECT id, text FROM posts",
    """CREATE TRIGGER posts_fts_insert AFTER INSERT ON posts BEGIN
         INSERT INTO posts_fts(rowid, text) VALUES (new.id, new.text);
       END""",
    """CREATE TRIGGER posts_fts_delete AFTER DELETE ON posts BEGIN
         INSERT INTO posts_fts(posts_fts, rowid, text) VALUES ('delete', old.id, old.text);
       END""",
    """CREATE TRIGGER posts_fts_update AFTER UPDATE OF text ON posts BEGIN
         INSERT INTO posts_fts(posts_fts, rowid, text) VALUES ('delete', old.id, old.text);
         INSERT INTO posts_fts(rowid, text) VALUES (new.id, new.text);
       END""",
]
_SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS posts_fts_insert",
    "DROP TRIGGER IF EXISTS posts_fts_delete",
    "DROP TRIGGER IF EXISTS posts_fts_update",
    "DROP TABLE IF EXISTS posts_fts",
]


def _statements(schema_editor, postgres, sqlite):
    dialect = schema_editor.client.capabilities.dialect
    if dialect == "postgres":
        return postgres
    if dialect == "sqlite":
        return sqlite
    raise NotImplementedError(f"full-text search is not set up for {dialect}")


async def forward(apps, schema_editor):
    for sql in _statements(schema_editor, _POSTGRES, _SQLITE):
        await schema_editor.client.execute_script(sql)


async def backward(apps, schema_editor):
    for sql in _statements(schema_editor, _POSTGRES_REVERSE, _SQLITE_REVERSE):
        await schema_editor.client.execute_script(sql)


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]

    operations = [ops.RunPython(forward, backward)]
