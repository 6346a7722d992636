"""What hostile documents cost to measure and validate, uncached: the worst shapes we know
under the default limits, beside ordinary ones, and strawberry's stock depth and alias
limiters on the fragment chain for scale.

  .venv/bin/python -m bench.documents [--repeat 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from graphql import DocumentNode, GraphQLError, parse
from strawberry.extensions import max_aliases, query_depth_limiter

from app.settings import Settings
from schema import build_schema

USER_FIELDS = [
    "id",
    "username",
    "displayName",
    "bio",
    "isLocked",
    "role",
    "email",
    "followerCount",
    "followingCount",
    "createdAt",
]


def chain(levels: int, leaf: str = "viewer { id }") -> str:
    parts = ["query { ...F0 }"]
    parts += [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    parts.append(f"fragment F{levels} on Query {{ {leaf} }}")
    return "\n".join(parts)


def fragments(count: int) -> str:
    spreads = " ".join(f"...G{i}" for i in range(count))
    definitions = " ".join(
        f"fragment G{i} on User {{ {USER_FIELDS[i % len(USER_FIELDS)]} }}" for i in range(count)
    )
    return f"{{ viewer {{ {spreads} }} }} {definitions}"


def documents() -> dict[str, str]:
    timeline = (
        "{ homeTimeline(first: 20) { edges { cursor node { id text createdAt likeCount "
        "author { username displayName } replyTo { id author { username } } "
        "quoteOf { id text author { username } } } } pageInfo { hasNextPage endCursor } } }"
    )
    return {
        "README home timeline": timeline,
        "fragment chain, 30 levels": chain(30),
        "fragment chain, 64 levels": chain(64),
        "same field 300 times": "{ " + "viewer { id } " * 300 + "}",
        "20 fields x 20 copies": "{ viewer { "
        + " ".join(f for f in USER_FIELDS for _ in range(20))
        + " } }",
        "32 one-field fragments (the cap)": fragments(32),
        "185 one-field fragments": fragments(185),
        "180 wrappers spreading one fragment": "{ viewer { "
        + " ".join(f"...W{i}" for i in range(180))
        + " } } "
        + " ".join(f"fragment W{i} on User {{ ...G }}" for i in range(180))
        + " fragment G on User { id }",
        "million-node connections": "{ publicTimeline(first: 100) { edges { node { id "
        "replies(first: 100) { edges { node { id replies(first: 100) { edges { node { id } } } "
        "} } } } } } }",
    }


def best_of(repeat: int, run: Callable[[], list[GraphQLError]]) -> tuple[float, list[GraphQLError]]:
    best, errors = float("inf"), []
    for _ in range(repeat):
        started = time.perf_counter()
        errors = run()
        best = min(best, time.perf_counter() - started)
    return best, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    settings = Settings(secret_key="x" * 40, data_dir="data")
    schema = build_schema(settings)
    pipeline = schema.pipeline
    print(f"{'document':36s} {'bytes':>6s} {'ms':>8s}  answer")
    for name, query in documents().items():
        document: DocumentNode = pipeline.parse(query)

        def validate(document: DocumentNode = document) -> list[GraphQLError]:
            pipeline.validate.cache_clear()  # type: ignore[attr-defined]
            return pipeline.validate(document)

        seconds, errors = best_of(args.repeat, validate)
        answer = (errors[0].extensions or {}).get("code") if errors else "valid"
        print(f"{name:36s} {len(query):6d} {seconds * 1000:8.2f}  {answer}")
    print("\nstrawberry's stock depth and alias limiters, on the fragment chain (for scale):")
    rules = [
        query_depth_limiter.create_validator(12, None),
        max_aliases.create_validator(15),
    ]
    from graphql import validate as graphql_validate

    for levels in (12, 16, 18, 20):
        document = parse(chain(levels))
        seconds, _ = best_of(1, lambda d=document: graphql_validate(schema._schema, d, rules))
        print(f"  {levels} levels: {seconds * 1000:10.1f} ms")


if __name__ == "__main__":
    main()
