"""A realistic synthetic data set, built fast with bulk inserts (`holdfast seed`).

Accounts `user00001`..., all with one shared password (hashed once); a power-law follow graph
(a few accounts with very many followers, most with a few); posts spread over the last days
with snowflake ids made from their timestamps, some of them for subscribers
(`subscribers_share`); accounts with premium access (`premium_share`: one `supporter` plan and
an active complimentary subscription each, its period containing now); replies, quotes,
hashtags, mentions, links;
likes (power-law over posts), reposts and bookmarks; every denormalised counter exact; and
the home-timeline fan-out table filled in SQL by the home rule (`app.services.home`, as a
rebuild would fill it), capped to the newest `home_max_entries` entries per account.

Everything is generated in Python with a seeded `random.Random` (the same options make the
same data), then loaded with COPY on PostgreSQL (asyncpg) or executemany in one transaction
on SQLite. The database must be empty of accounts.

- `options`: what is asked for and reported;
- `generate`: accounts, follows, posts and interactions, in memory;
- `text` and `words`: post text, entities, mentions and hashtags;
- `load`: bulk loading per dialect, and the home timelines;
- `run`: the entry point, `seed`.

The ids encode the past moments they stand for, with this process's node id (held through
`app.nodes`), so they cannot meet another process's ids: no other live process holds that node
id; ids an earlier holder of it made are in none of the seeded tables (all empty, as they
hang off accounts); a later holder starts after the end this lease records, which `_claim`
moves past the latest millisecond seeded.
"""

from __future__ import annotations

from app.seed.options import SEED_PASSWORD, SeedError, SeedOptions, SeedReport
from app.seed.run import seed

__all__ = ["SEED_PASSWORD", "SeedError", "SeedOptions", "SeedReport", "seed"]
