"""Who gets a post in their home timeline: the rule, written once as SQL, and every path that
writes or reads home timelines, each the rule plus a scope (which owners, which posts).

The rule. An account's home timeline holds, each post at most once:
1. its own posts, of any visibility, replies included;
2. DIRECT posts that mention it;
3. PUBLIC, FOLLOWERS and SUBSCRIBERS posts of the accounts it follows; a reply only when it
   answers its own author (a thread), the owner, or another account the owner follows (as
   Mastodon). A SUBSCRIBERS post is in every follower's timeline: whether the owner may see
   it depends on the time (premium access), so reads decide it (`views.VISIBLE`), as they
   do for blocks;
4. reposts by the accounts it follows of posts that are not its own and not already in by
   1-3; a post that several of them reposted comes in once, by the earliest repost. The
   owner's own reposts are not in it (it does not follow itself).
Deleted posts are in none. An entry is (owner, entry_id, post_id, reposter_id, source_id):
entry_id is the sort key (the post's id for 1-3, the repost's for 4) and the source is the
author (1-3) or the reposter (4).

Stored or merged. Under 3, posts of accounts with more than `fanout_max_followers`
followers (:big) are not written to followers' rows (one row per follower is too many): the
read path merges them in (`merged_posts`). Everything else is stored in `home_entries`, a
cache of the rule: `rebuild` rewrites one owner from it, `FILL_STATEMENT` (the seed) fills
ranges of owners, and each change keeps the rows equal to what a rebuild would write:
- `fan_out_post`: a new post, to every owner it belongs to;
- `fan_out_repost` and `retract_repost`: a repost made or taken back;
- `refresh_post`: a post's audience changed for some accounts (an edit changing a DIRECT
  post's mentions);
- `follow_changed`: a follow added or removed (blocking removes follows): the owner's rows
  the rule no longer admits go; what it now admits among the account's newest `BACKFILL`
  posts, the replies to them and its newest `BACKFILL` reposts comes in; and when the
  account reaches the threshold from either side, its posts move between stored and merged
  in all its followers' rows.
The caps make the only differences from a rebuild: `BACKFILL` (a follow brings in that much
history, as Mastodon's merge does) and `home_max_entries` (rebuild and the seed keep the
newest that many per owner; `fanout.trim_homes` cuts the others down to it). A post the
rule admits as itself never comes in as a repost, even when its own entry is beyond a cap.

Blocks and mutes are applied when reading (`relations`), not here. Blocking removes follows
both ways, and with them (through `follow_changed`) what they brought; what remains (a
DIRECT post, a third account's repost of a blocked author's post) stays stored, hidden by
`views.VISIBLE`, and shows again after unblocking, as a rebuild would have it. Mutes hide
entries whose author or reposter is muted; they never choose another entry for a post.

Every function takes the connection (transaction) to run in and is idempotent: it makes the
rows in its scope what the rule says of the current state, so running it again changes
nothing (they can become job handlers that run at least once). The fan-out functions return
the entries they inserted, for live updates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tortoise.backends.base.client import BaseDBAsyncClient

from app import sql

# How much of a newly followed account's history (posts, and separately reposts) its new
# follower's home timeline receives.
BACKFILL = 40

_COLUMNS = "owner_id, entry_id, post_id, reposter_id, source_id"
# The visibilities of posts that reach the timelines of their author's followers (3).
_FOLLOWED = "('public', 'followers', 'subscribers')"
# A parameter in a select list needs its type on PostgreSQL.
_OWNER = "CAST(:owner AS BIGINT)"


@dataclass(frozen=True, slots=True)
class Entry:
    """A row written to an owner's home timeline."""

    owner_id: int
    entry_id: int
    post_id: int
    reposter_id: int | None


# --- the rule ----------------------------------------------------------------------------
# Each fragment takes the SQL of the owner (a column or a parameter) and the aliases of the
# rows it judges; the aliases it introduces are distinct, so fragments nest.


def follows(follower: str, followee: str, alias: str) -> str:
    return (
        f"EXISTS (SELECT 1 FROM follows {alias} "
        f"WHERE {alias}.follower_id = {follower} AND {alias}.followee_id = {followee})"
    )


def is_big(account: str, alias: str = "hb") -> str:
    """The account has more than :big followers: its posts are merged at read time."""
    return (
        f"EXISTS (SELECT 1 FROM users {alias} "
        f"WHERE {alias}.id = {account} AND {alias}.follower_count > :big)"
    )


def admits_post(owner: str, p: str, replied_to: str | None = None) -> str:
    """Post `p` belongs in owner's home timeline as itself (1-3), stored or merged.
    `replied_to`: the author of the post `p` replies to, when the statement has it joined
    (bulk statements: a hash join instead of a look-up per row); otherwise looked up."""
    if replied_to is None:
        reply = f"""EXISTS (
        SELECT 1 FROM posts hp WHERE hp.id = {p}.reply_to_id AND (
          hp.author_id = {p}.author_id OR hp.author_id = {owner}
          OR {follows(owner, "hp.author_id", "hfp")}))"""
    else:
        reply = f"""({replied_to} = {p}.author_id OR {replied_to} = {owner}
          OR {follows(owner, replied_to, "hfp")})"""
    return f"""({p}.deleted_at IS NULL AND (
  {p}.author_id = {owner}
  OR ({p}.visibility = 'direct' AND EXISTS (
        SELECT 1 FROM mentions hm WHERE hm.post_id = {p}.id AND hm.user_id = {owner}))
  OR ({p}.visibility IN {_FOLLOWED} AND {follows(owner, f"{p}.author_id", "hfa")}
      AND ({p}.reply_to_id IS NULL OR {reply}))))"""


def merged_at_read(owner: str, p: str) -> str:
    """Of the posts `admits_post` admits, those read from their big author's posts instead of
    stored (only 3 depends on following, so only 3 is merged)."""
    return (
        f"({p}.author_id <> {owner} AND {p}.visibility IN {_FOLLOWED} "
        f"AND {is_big(f'{p}.author_id')})"
    )


def stores_post(owner: str, p: str, replied_to: str | None = None) -> str:
    return f"({admits_post(owner, p, replied_to)} AND NOT {merged_at_read(owner, p)})"


def admits_repost(owner: str, r: str, p: str, replied_to: str | None = None) -> str:
    """Repost `r` of post `p` belongs in owner's home timeline (4); always stored."""
    return f"""({r}.post_id = {p}.id AND {p}.deleted_at IS NULL AND {p}.author_id <> {owner}
  AND {follows(owner, f"{r}.user_id", "hfr")}
  AND NOT {admits_post(owner, p, replied_to)}
  AND NOT EXISTS (
    SELECT 1 FROM reposts hre WHERE hre.post_id = {p}.id AND hre.id < {r}.id
      AND {follows(owner, "hre.user_id", "hfe")}))"""


def entry_belongs(e: str) -> str:
    """Stored row `e` of home_entries is one the rule stores."""
    return f"""(
  ({e}.reposter_id IS NULL AND {e}.entry_id = {e}.post_id AND EXISTS (
     SELECT 1 FROM posts bp WHERE bp.id = {e}.post_id AND bp.author_id = {e}.source_id
       AND {stores_post(f"{e}.owner_id", "bp")}))
  OR ({e}.reposter_id IS NOT NULL AND {e}.source_id = {e}.reposter_id AND EXISTS (
     SELECT 1 FROM reposts br JOIN posts bp ON bp.id = br.post_id
     WHERE br.id = {e}.entry_id AND br.user_id = {e}.reposter_id AND br.post_id = {e}.post_id
       AND {admits_repost(f"{e}.owner_id", "br", "bp")}))
)"""


def _original(owner: str, p: str) -> str:
    return (
        f"{owner} AS owner_id, {p}.id AS entry_id, {p}.id AS post_id, "
        f"CAST(NULL AS BIGINT) AS reposter_id, {p}.author_id AS source_id"
    )


def _reposted(owner: str, r: str) -> str:
    return (
        f"{owner} AS owner_id, {r}.id AS entry_id, {r}.post_id AS post_id, "
        f"{r}.user_id AS reposter_id, {r}.user_id AS source_id"
    )


def merged_posts(owner: str) -> str:
    """A condition on posts `p`: the posts the rule merges into owner's home timeline at
    read time (those of followed accounts above the threshold)."""
    return f"""p.author_id IN (
    SELECT mf.followee_id FROM follows mf
    WHERE mf.follower_id = {owner} AND {is_big("mf.followee_id", "hbm")})
  AND {admits_post(owner, "p")} AND {merged_at_read(owner, "p")}"""


# --- writing entries ---------------------------------------------------------------------


def _insert(candidates: str) -> str:
    # The outer SELECT's WHERE keeps SQLite from reading ON CONFLICT as a join constraint.
    return (
        f"INSERT INTO home_entries ({_COLUMNS}) SELECT {_COLUMNS} FROM ({candidates}) c "
        "WHERE 1 = 1 ON CONFLICT (owner_id, entry_id) DO NOTHING "
        "RETURNING owner_id, entry_id, post_id, reposter_id"
    )


async def _rows(
    conn: BaseDBAsyncClient, statement: str, params: Mapping[str, object]
) -> list[Entry]:
    rows = await sql.fetch(statement, params, conn)
    return [Entry(r["owner_id"], r["entry_id"], r["post_id"], r["reposter_id"]) for r in rows]


# The accounts a post may belong to as itself: its author, the accounts it mentions, and
# its author's followers unless the author is big (then it is merged instead).
_POST_OWNERS = f"""
SELECT op.author_id AS id FROM posts op WHERE op.id = :post
UNION SELECT om.user_id FROM mentions om WHERE om.post_id = :post
UNION SELECT pf.follower_id FROM posts pa JOIN follows pf ON pf.followee_id = pa.author_id
  WHERE pa.id = :post AND NOT {is_big("pa.author_id", "hbo")}
"""

_FAN_OUT_POST = _insert(
    f"SELECT {_original('o.id', 'p')} FROM ({_POST_OWNERS}) o CROSS JOIN posts p "
    f"WHERE p.id = :post AND {stores_post('o.id', 'p')}"
)


async def fan_out_post(conn: BaseDBAsyncClient, post_id: int, *, big: int) -> list[Entry]:
    """Write a new post into the home timelines it belongs in."""
    return await _rows(conn, _FAN_OUT_POST, {"post": post_id, "big": big})


_REFRESH_POST_DELETE = f"""
DELETE FROM home_entries AS e
WHERE e.owner_id IN (:owners) AND e.post_id = :post AND NOT {entry_belongs("e")}
"""
_REFRESH_POST_INSERT = _insert(
    f"""
    SELECT {_original("o.id", "p")} FROM users o CROSS JOIN posts p
    WHERE o.id IN (:owners) AND p.id = :post AND {stores_post("o.id", "p")}
    UNION ALL
    SELECT {_reposted("o.id", "r")} FROM users o CROSS JOIN reposts r
    JOIN posts p ON p.id = r.post_id
    WHERE o.id IN (:owners) AND r.post_id = :post AND {admits_repost("o.id", "r", "p")}
    """
)


async def refresh_post(
    conn: BaseDBAsyncClient, post_id: int, owners: list[int], *, big: int
) -> list[Entry]:
    """Make a post's entries in the given owners' timelines what the rule says now (after its
    audience changed for them)."""
    if not owners:
        return []
    params = {"post": post_id, "owners": sql.ids_param(owners), "big": big}
    await sql.execute(_REFRESH_POST_DELETE, params, conn)
    return await _rows(conn, _REFRESH_POST_INSERT, params)


_FAN_OUT_REPOST = _insert(
    f"""
    SELECT {_reposted("f.follower_id", "r")}
    FROM reposts r JOIN posts p ON p.id = r.post_id JOIN follows f ON f.followee_id = r.user_id
    WHERE r.id = :repost AND {admits_repost("f.follower_id", "r", "p")}
    """
)
# A later repost of the same post that came in first (its transaction committed before this
# one's) gives way to this one in the timelines of the reposter's followers.
_SUPERSEDED_REPOSTS = f"""
DELETE FROM home_entries AS e
WHERE e.owner_id IN (
    SELECT f.follower_id FROM follows f JOIN reposts r ON r.user_id = f.followee_id
    WHERE r.id = :repost)
  AND e.entry_id IN (
    SELECT later.id FROM reposts later JOIN reposts r ON r.post_id = later.post_id
    WHERE r.id = :repost AND later.id > r.id)
  AND NOT {entry_belongs("e")}
"""


async def fan_out_repost(conn: BaseDBAsyncClient, repost_id: int, *, big: int) -> list[Entry]:
    """Write a new repost into the home timelines of the reposter's followers it belongs in."""
    params = {"repost": repost_id, "big": big}
    inserted = await _rows(conn, _FAN_OUT_REPOST, params)
    await sql.execute(_SUPERSEDED_REPOSTS, params, conn)
    return inserted


_RETRACT_REPOST = f"""
DELETE FROM home_entries AS e
WHERE e.owner_id IN (SELECT f.follower_id FROM follows f WHERE f.followee_id = :reposter)
  AND e.entry_id = :repost AND NOT {entry_belongs("e")}
"""
# The next repost of the post by an account each of them follows takes the retracted one's
# place.
_NEXT_REPOSTS = _insert(
    f"""
    SELECT {_reposted("f.follower_id", "r")}
    FROM follows f JOIN follows g ON g.follower_id = f.follower_id
    JOIN reposts r ON r.user_id = g.followee_id JOIN posts p ON p.id = r.post_id
    WHERE f.followee_id = :reposter AND r.post_id = :post
      AND {admits_repost("f.follower_id", "r", "p")}
    """
)


async def retract_repost(
    conn: BaseDBAsyncClient, repost_id: int, reposter_id: int, post_id: int, *, big: int
) -> list[Entry]:
    """After repost `repost_id` (of `post_id` by `reposter_id`) was deleted: take it out of
    the timelines it was in; returns the entries that replace it."""
    params = {"repost": repost_id, "reposter": reposter_id, "post": post_id, "big": big}
    await sql.execute(_RETRACT_REPOST, params, conn)
    return await _rows(conn, _NEXT_REPOSTS, params)


# --- follows -----------------------------------------------------------------------------


def _newest_posts(account: str, alias: str) -> str:
    """Ids of the account's newest BACKFILL posts that a follower may be shown."""
    return (
        f"SELECT {alias}.id FROM (SELECT np.id FROM posts np WHERE np.author_id = {account} "
        f"AND np.deleted_at IS NULL AND np.visibility IN {_FOLLOWED} "
        f"ORDER BY np.id DESC LIMIT :backfill) {alias}"
    )


# Entries of one owner whose place depends on whether it follows :account (the posts of the
# account, replies to them, posts it reposted, and its reposts).
_TOUCHED_BY_ACCOUNT = """(
  e.source_id = :account
  OR EXISTS (SELECT 1 FROM posts tp LEFT JOIN posts tq ON tq.id = tp.reply_to_id
             WHERE tp.id = e.post_id AND (tp.author_id = :account OR tq.author_id = :account))
  OR EXISTS (SELECT 1 FROM reposts tr WHERE tr.post_id = e.post_id AND tr.user_id = :account)
)"""

_FOLLOW_DELETE = f"""
DELETE FROM home_entries AS e
WHERE e.owner_id = :owner AND {_TOUCHED_BY_ACCOUNT} AND NOT {entry_belongs("e")}
RETURNING post_id
"""

# The posts whose entries a follow change looks at: the account's newest posts, the replies
# to them, the posts of its newest reposts, and those whose entries it just took out.
_FOLLOW_SCOPE = f"""
{_newest_posts(":account", "n1")}
UNION SELECT rp.id FROM posts rp WHERE rp.reply_to_id IN ({_newest_posts(":account", "n2")})
UNION SELECT n3.post_id FROM (
  SELECT ar.post_id FROM reposts ar WHERE ar.user_id = :account
  ORDER BY ar.id DESC LIMIT :backfill) n3
UNION SELECT rm.id FROM posts rm WHERE rm.id IN (:removed)
"""

_FOLLOW_INSERT = _insert(
    f"""
    SELECT {_original(_OWNER, "p")} FROM posts p
    WHERE p.id IN ({_FOLLOW_SCOPE}) AND {stores_post(_OWNER, "p")}
    UNION ALL
    SELECT {_reposted(_OWNER, "r")} FROM reposts r JOIN posts p ON p.id = r.post_id
    WHERE r.post_id IN ({_FOLLOW_SCOPE}) AND {admits_repost(_OWNER, "r", "p")}
    """
)

# When an account reaches the threshold, its posts move between the stored rows of its
# followers and the read-time merge, whichever way it went.
_RESIZE_DELETE = f"""
DELETE FROM home_entries AS e
WHERE e.owner_id IN (SELECT f.follower_id FROM follows f WHERE f.followee_id = :account)
  AND e.source_id = :account AND e.reposter_id IS NULL AND NOT {entry_belongs("e")}
"""
_RESIZE_INSERT = _insert(
    f"""
    SELECT {_original("f.follower_id", "p")} FROM follows f CROSS JOIN posts p
    WHERE f.followee_id = :account AND p.id IN ({_newest_posts(":account", "n1")})
      AND {stores_post("f.follower_id", "p")}
    """
)


async def follow_changed(
    conn: BaseDBAsyncClient, owner_id: int, account_id: int, *, followers: int, big: int
) -> list[Entry]:
    """After `owner_id` started or stopped following `account_id`: make the owner's entries
    that the follow touches what the rule says, and bring in the account's recent history.
    `followers` is the account's follower count as the change left it: at the threshold,
    the account's posts also move in or out of all its followers' stored rows."""
    params: dict[str, object] = {
        "owner": owner_id,
        "account": account_id,
        "big": big,
        "backfill": BACKFILL,
    }
    removed = await sql.fetch(_FOLLOW_DELETE, params, conn)
    params["removed"] = sql.ids_param([row["post_id"] for row in removed])
    inserted = await _rows(conn, _FOLLOW_INSERT, params)
    # One follow more or less moves an account at the threshold across it.
    if followers in (big, big + 1):
        await sql.execute(_RESIZE_DELETE, params, conn)
        inserted += await _rows(conn, _RESIZE_INSERT, params)
    return inserted


# --- rebuilding --------------------------------------------------------------------------


def _capped(owners: Callable[[str], str], owner: Callable[[str], str]) -> str:
    """Every entry the rule stores for some owners, the newest :cap of each: `owners(column)`
    is the condition on the owner's id in `column`; `owner(column)` is the owner's id as the
    rule reads it (a parameter when there is one owner: PostgreSQL then plans its
    subqueries for that account alone)."""

    def branch(column: str, select: str, source: str, condition: str) -> str:
        return f"SELECT {select} FROM {source} WHERE {owners(column)} AND {condition}"

    # A post that mentions its author, or a followed account's post that mentions the owner,
    # comes from two branches: the rank counts it once and the insert writes it once.
    candidates = " UNION ALL ".join(
        [
            branch(
                "op.author_id",
                _original(owner("op.author_id"), "op"),
                "posts op LEFT JOIN posts oq ON oq.id = op.reply_to_id",
                stores_post(owner("op.author_id"), "op", "oq.author_id"),
            ),
            branch(
                "om.user_id",
                _original(owner("om.user_id"), "mp"),
                "mentions om JOIN posts mp ON mp.id = om.post_id "
                "LEFT JOIN posts mq ON mq.id = mp.reply_to_id",
                stores_post(owner("om.user_id"), "mp", "mq.author_id"),
            ),
            branch(
                "fo.follower_id",
                _original(owner("fo.follower_id"), "fp"),
                "follows fo JOIN posts fp ON fp.author_id = fo.followee_id "
                "LEFT JOIN posts fq ON fq.id = fp.reply_to_id",
                f"NOT {is_big('fo.followee_id', 'hbs')} "
                f"AND {stores_post(owner('fo.follower_id'), 'fp', 'fq.author_id')}",
            ),
            branch(
                "ro.follower_id",
                _reposted(owner("ro.follower_id"), "r"),
                "follows ro JOIN reposts r ON r.user_id = ro.followee_id "
                "JOIN posts p ON p.id = r.post_id LEFT JOIN posts rq ON rq.id = p.reply_to_id",
                admits_repost(owner("ro.follower_id"), "r", "p", "rq.author_id"),
            ),
        ]
    )
    return f"""
INSERT INTO home_entries ({_COLUMNS})
SELECT {_COLUMNS} FROM (
  SELECT c.*, DENSE_RANK() OVER (PARTITION BY c.owner_id ORDER BY c.entry_id DESC) AS position
  FROM ({candidates}) c
) ranked
WHERE position <= :cap
ON CONFLICT (owner_id, entry_id) DO NOTHING
"""


_REBUILD = _capped(lambda column: f"{column} = :owner", lambda column: _OWNER)

# The seed's bulk fill: parameters :lo and :hi (a range of owner ids), :big and :cap.
FILL_STATEMENT = _capped(lambda column: f"{column} BETWEEN :lo AND :hi", lambda column: column)


async def rebuild(conn: BaseDBAsyncClient, owner_id: int, *, big: int, cap: int) -> int:
    """Rewrite one account's home timeline from the rule; returns its new length."""
    params = {"owner": owner_id, "big": big, "cap": cap}
    await sql.execute("DELETE FROM home_entries WHERE owner_id = :owner", params, conn)
    return await sql.execute(_REBUILD, params, conn)
