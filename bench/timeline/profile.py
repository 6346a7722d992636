"""Summarise a py-spy `--format raw` profile (collapsed stacks) of the GraphQL server: where
its CPU time goes, by layer (innermost frame that belongs to a known layer) and for a few
functions inclusive of what they call.

Run on a file: python -m bench.timeline.profile bench/results/graphql-profile.txt [cpu-µs]
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

# Layers, tested from the innermost frame outwards; the first match takes the sample.
LAYERS: list[tuple[str, str]] = [
    ("JSON encoding (orjson/json)", r"\(orjson|\(json/|encode_json"),
    ("SQL driver (asyncpg, client side)", r"\(asyncpg/"),
    ("Tortoise ORM", r"\(tortoise/|\(pypika"),
    ("JWT decode", r"\(jwt/"),
    ("app services and views (row mapping)", r"\(app/"),
    ("compiled selections (schema.compiled's generated code)", r"\(<selection "),
    ("page plans (schema.rowplan's generated code)", r"\(<row plan "),
    ("schema resolvers and executor", r"\(schema/"),
    ("graphql-core validation", r"\(graphql/validation/"),
    ("graphql-core parsing", r"\(graphql/language/"),
    ("graphql-core execution", r"\(graphql/"),
    ("strawberry", r"\(strawberry/"),
    ("Starlette and middleware", r"\(starlette/|\(asgi_correlation_id/"),
    ("uvicorn HTTP protocol", r"\(uvicorn/(protocols|middleware)/"),
    ("structlog and logging", r"\(structlog/|\(logging/"),
    ("event loop and C callbacks (uvloop, httptools, asyncpg protocol)", r"\(asyncio/"),
]

# Functions whose samples count with everything below them.
INCLUSIVE: list[tuple[str, str]] = [
    ("HTTP request, whole (uvicorn run_asgi)", r"run_asgi \("),
    ("GraphQL endpoint: request to response", r"\(schema/http/__init__"),
    ("  context: token, budget", r"GraphQLHTTP\.context \(|^context \(schema/http"),
    ("  runner (session check and execution)", r"Runner\.run \(schema/runner|^run \(schema/runner"),
    ("    graphql-core execute", r"\(graphql/execution/"),
    ("      compiled selections", r"\(<selection "),
    ("    page plan: fetch and build (schema.rowplan)", r"RowPlan\.run \(schema/rowplan"),
    ("      rows to the answer (generated code)", r"\(<row plan "),
    ("      the page's statement (home_rows_of_session)", r"home_rows_of_session \("),
    (
        "strawberry view (WebSockets, GraphiQL) or Schema.execute",
        r"\(strawberry/http/|execute \(strawberry/schema/schema\.py",
    ),
    ("  validation", r"validate \(graphql/validation/validate"),
    ("session check on its own (viewer_of)", r"viewer_of \("),
    (
        "home timeline (SQL + rows to dataclasses)",
        r"(^|\.)home(_of_session)? \(app/services/timelines",
    ),
    ("  rows to dataclasses (views.py)", r"\(app/services/views\.py"),
    ("asyncpg, client side (all statements)", r"\(asyncpg/"),
    ("  of which the pool's reset query on release", r"Connection\.reset \(asyncpg/"),
    ("response JSON encoding", r"encode_json|\(orjson|orjson\.dumps"),
    ("request budget (rate limiter)", r"\(limits/|spend_request \("),
    ("per-request loaders", r"\(schema/loaders"),
]

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")


def _frames(stack: str) -> list[str]:
    return stack.split(";")


def summarize(path: Path, cpu_us: float | None = None) -> str:
    """The report; with `cpu_us` (the server's CPU µs per request, measured) shares are
    also given in µs per request."""
    layers: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = skipped = 0
    for line in path.read_text().splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        count = int(match["count"])
        frames = _frames(match["stack"])
        if any("(threading.py" in frame for frame in frames):
            skipped += count  # an idle worker thread py-spy did not recognise as idle
            continue
        total += count
        for frame in reversed(frames):
            for name, pattern in LAYERS:
                if re.search(pattern, frame):
                    layers[name] += count
                    break
            else:
                continue
            break
        else:
            layers["other"] += count
        leaves[frames[-1]] += count
        for name, pattern in INCLUSIVE:
            if any(re.search(pattern, frame) for frame in frames):
                inclusive[name] += count
    if not total:
        return "empty profile"
    lines = [
        f"profile: {total} samples of the GraphQL server's event-loop thread (py-spy, idle "
        f"excluded; {skipped} samples of waiting worker threads left out)"
    ]
    per_request = ""
    if cpu_us:
        per_request = f"; µs of CPU per request, of {cpu_us:.0f} measured"
    lines.append(f"by layer (innermost known frame){per_request}:")
    for name, count in layers.most_common():
        us = f"{count / total * cpu_us:8.0f} µs" if cpu_us else ""
        lines.append(f"  {count / total:6.1%} {us}  {name}")
    lines.append("inclusive:")
    for name, _ in INCLUSIVE:
        count = inclusive[name]
        us = f"{count / total * cpu_us:8.0f} µs" if cpu_us else ""
        lines.append(f"  {count / total:6.1%} {us}  {name}")
    lines.append("hottest functions (self):")
    for frame, count in leaves.most_common(15):
        lines.append(f"  {count / total:6.1%}  {frame[:130]}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else None))
