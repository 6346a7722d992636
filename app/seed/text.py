"""Post text: words, mentions, hashtags and links, and the entities, mentions and hashtags
posting would store for it."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import orjson

from app.seed.generate import Posts, Users, cumulative, moment
from app.seed.words import CONTENT_WARNINGS, HASHTAGS, WORDS
from app.services.entities import parse_entities


def post_rows(
    rng: random.Random,
    users: Users,
    posts: Posts,
    mentions_out: list[tuple[int, int]],
    tags_out: list[tuple[int, str]],
) -> Iterator[tuple[Any, ...]]:
    """The rows of `posts`, made while they stream to the database: each one's text (with
    mentions, hashtags and links), its entities as posting would store them, and (appended to
    `mentions_out` and `tags_out`) its mentions and hashtags."""
    n = len(users.ids)
    tag_weights = cumulative(1.0 / (rank + 1) for rank in range(len(HASHTAGS)))
    name_index = {name: i for i, name in enumerate(users.names)}
    random_, choices, randint = rng.random, rng.choices, rng.randint
    dumps = orjson.dumps
    # Text: slices of one long random word stream (much faster than choosing each word).
    stream = choices(WORDS, k=200_000)
    for i, post_id in enumerate(posts.ids):
        author = posts.author[i]
        kind = posts.visibility[i]
        length = randint(4, 26)
        offset = int(random_() * (len(stream) - length))
        words = stream[offset : offset + length]
        mentioned: list[int] = []
        if n > 1 and (kind == "direct" or random_() < 0.08):
            pool = users.followees[author]
            for _ in range(1 if random_() < 0.7 else 2):
                other = (
                    pool[int(random_() * len(pool))]
                    if pool and random_() < 0.8
                    else (int(random_() * n))
                )
                if other != author and other not in mentioned:
                    mentioned.append(other)
            if kind == "direct" and not mentioned:
                mentioned.append((author + 1) % n)
        parts = [f"@{users.names[u]}" for u in mentioned]
        parts.extend(words)
        if random_() < 0.3:
            for tag in choices(HASHTAGS, cum_weights=tag_weights, k=1 if random_() < 0.7 else 2):
                parts.insert(randint(len(mentioned), len(parts)), f"#{tag}")
        if random_() < 0.05:
            parts.append(f"https://example.org/articles/{randint(1, 99_999)}")
        text = " ".join(parts)
        warning = (
            CONTENT_WARNINGS[int(random_() * len(CONTENT_WARNINGS))] if (random_() < 0.03) else ""
        )
        entities = parse_entities(text)
        tags: set[str] = set()
        mention_ids: set[int] = set()
        for entity in entities:
            if entity.kind == "hashtag":
                tags.add(entity.value)
            elif entity.kind == "mention":
                found = name_index.get(entity.value.lower())
                if found is not None:
                    mention_ids.add(found)
        for tag in sorted(tags):
            tags_out.append((post_id, tag))
        for user in sorted(mention_ids):
            mentions_out.append((post_id, users.ids[user]))
        reply_to, quote_of = posts.reply_to[i], posts.quote_of[i]
        yield (
            post_id,
            users.ids[author],
            text,
            warning,
            kind,
            posts.ids[reply_to] if reply_to >= 0 else None,
            posts.ids[quote_of] if quote_of >= 0 else None,
            dumps([e.as_json() for e in entities]).decode(),
            posts.like_count[i],
            posts.repost_count[i],
            posts.reply_count[i],
            posts.quote_count[i],
            moment(posts.ms[i]),
        )
