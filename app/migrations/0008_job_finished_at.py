"""An index on jobs by state and finish time: purging deletes done jobs that finished more
than `keep_done_seconds` ago (the column exists since 0007)."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0007_jobs')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='Job',
            index=Index(fields=['state', 'finished_at']),
        ),
    ]
