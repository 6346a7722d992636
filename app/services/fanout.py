"""Maintenance of the home-timeline fan-out table: it is a cache of the follow graph, so it can
be trimmed to a length and rebuilt from the graph at any time."""

from __future__ import annotations

from tortoise.transactions import in_transaction

from app import sql


async def rebuild_home(owner_id: int, *, max_entries: int, big_account: int) -> int:
    """Rewrite one account's home timeline from its own posts, the posts of the accounts it
    follows (except those merged at read time) and their reposts; returns its new length."""
    params = {"owner": owner_id, "cap": max_entries, "big": big_account}
    async with in_transaction() as conn:
        await sql.execute("DELETE FROM home_entries WHERE owner_id = :owner", params, conn)
        return await sql.execute(
            """
            INSERT INTO home_entries (owner_id, entry_id, post_id, reposter_id, source_id)
            SELECT :owner, entry_id, post_id, reposter_id, source_id FROM (
              SELECT p.id AS entry_id, p.id AS post_id, CAST(NULL AS BIGINT) AS reposter_id,
                     p.author_id AS source_id
              FROM posts p
              WHERE p.deleted_at IS NULL AND (
                p.author_id = :owner
                OR (p.visibility = 'direct' AND EXISTS (
                      SELECT 1 FROM mentions m WHERE m.post_id = p.id AND m.user_id = :owner))
                OR (p.visibility IN ('public', 'followers') AND p.author_id IN (
                      SELECT f.followee_id FROM follows f JOIN users u ON u.id = f.followee_id
                      WHERE f.follower_id = :owner AND u.follower_count <= :big)
                    AND (p.reply_to_id IS NULL OR EXISTS (
                      SELECT 1 FROM posts parent JOIN follows pf
                        ON pf.followee_id = parent.author_id AND pf.follower_id = :owner
                      WHERE parent.id = p.reply_to_id)
                      OR p.reply_to_id IN (
                        SELECT own.id FROM posts own WHERE own.author_id = p.author_id))))
              UNION ALL
              SELECT r.id, r.post_id, r.user_id, r.user_id
              FROM reposts r JOIN follows f ON f.followee_id = r.user_id
              WHERE f.follower_id = :owner
            ) candidates
            ORDER BY entry_id DESC LIMIT :cap
            """,
            params,
            conn,
        )


async def trim_homes(max_entries: int) -> int:
    """Drop the entries beyond the newest `max_entries` of every home timeline; returns how
    many went."""
    return await sql.execute(
        """
        DELETE FROM home_entries WHERE id IN (
          SELECT id FROM (
            SELECT id, ROW_NUMBER() OVER (PARTITION BY owner_id ORDER BY entry_id DESC) AS place
            FROM home_entries
          ) ranked WHERE place > :cap
        )
        """,
        {"cap": max_entries},
    )
