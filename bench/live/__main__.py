"""Live updates under load: subscribers spread over several processes, a burst of posts.

1. Creates a fresh PostgreSQL database `holdfast_bench_live` (next to `--postgres-url`),
   migrates it, and writes `--authors` authors and `--subscribers` subscribers, each following
   `--follows` random authors, with one open session each (access tokens are signed here
   with the benchmark's own key, so no password hashing is timed).
2. Starts `--processes` real `holdfast serve` processes sharing the database and Redis
   (`--redis-url`), each running jobs in process.
3. Opens one websocket per subscriber (graphql-transport-ws), round robin over the
   processes, and subscribes each to `homeTimeline`; reads every process's resident memory
   before and after, per idle connection.
4. Warms up with one post per author, then posts `--posts` posts through the GraphQL
   `createPost` mutation (`--concurrency` at a time, alternating processes) and measures,
   per delivery, the time from the mutation's response to the subscriber's receipt
   (negative when the event beat the response). Reports p50/p90/p99/max and any delivery
   expected (author followed by the subscriber) but not received within `--timeout`.
5. With `--max-idle N`, opens up to N more idle subscribed connections to ONE process in
   steps, and reports how many it held and its memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import websockets

from bench.timeline.__main__ import server, with_database

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SECRET = "bench-live-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
DATABASE = "holdfast_bench_live"

CREATE_POST = """
mutation($input: CreatePostInput!) {
  createPost(input: $input) {
    __typename
    ... on CreatePostSuccess { post { id } }
    ... on CreatePostError { code message }
  }
}"""
# homeTimeline yields the query's edges: the post is their node.
SUBSCRIBE = "subscription { homeTimeline { node { id } } }"


def log(message: str) -> None:
    print(message, flush=True)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def process_tree_rss_kib(pid: int) -> int:
    """The server's resident memory: the holdfast process (uvicorn serves in it)."""
    return rss_kib(pid)


@dataclass
class Data:
    sessions: dict[int, int]  # user id -> session id
    authors: list[int]
    follows: dict[int, list[int]]  # subscriber -> the authors it follows


async def create_data(url: str, args: argparse.Namespace) -> Data:
    """Authors, subscribers, follows and one session per account."""
    from app import ids
    from app.auth import hash_password

    ids.configure(1021)
    rng = random.Random(args.seed)
    password_hash = await hash_password("bench-live-password")
    now = datetime.now(UTC)
    conn = await asyncpg.connect(url)
    try:
        total = args.authors + args.subscribers
        user_ids = [ids.new_id() for _ in range(total)]
        await conn.copy_records_to_table(
            "users",
            columns=[
                "id", "username", "username_key", "email", "password_hash", "display_name",
                "display_name_key", "bio", "is_locked", "role", "follower_count",
                "following_count", "notifications_read_id", "created_at", "updated_at",
            ],
            records=[
                (uid, f"live{i:05d}", f"live{i:05d}", f"live{i:05d}@example.com", password_hash,
                 f"Live {i}", f"live {i}", "", False, "user", 0, 0, 0, now, now)
                for i, uid in enumerate(user_ids)
            ],
        )  # fmt: skip
        authors, subscribers = user_ids[: args.authors], user_ids[args.authors :]
        follows: dict[int, list[int]] = {}
        rows = []
        for subscriber in subscribers:
            follows[subscriber] = chosen = rng.sample(authors, args.follows)
            rows += [(ids.new_id(), subscriber, author) for author in chosen]
        await conn.copy_records_to_table(
            "follows", columns=["id", "follower_id", "followee_id"], records=rows
        )
        await conn.execute(
            "UPDATE users u SET follower_count = (SELECT COUNT(*) FROM follows f "
            "WHERE f.followee_id = u.id), following_count = (SELECT COUNT(*) FROM follows f "
            "WHERE f.follower_id = u.id)"
        )
        sessions = [(ids.new_id(), uid, now, now, None, "bench") for uid in user_ids]
        await conn.copy_records_to_table(
            "sessions",
            columns=["id", "user_id", "created_at", "last_used_at", "revoked_at", "user_agent"],
            records=sessions,
        )
        # A history (`--history` posts per author, in their followers' home timelines), so
        # that the tables are not empty when the servers plan their statements.
        history = [
            (ids.new_id(), author, f"history {i}", now)
            for author in authors
            for i in range(args.history)
        ]
        await conn.copy_records_to_table(
            "posts",
            columns=[
                "id", "author_id", "text", "created_at", "content_warning", "visibility",
                "entities", "like_count", "repost_count", "reply_count", "quote_count",
            ],
            records=[(*row, "", "public", "[]", 0, 0, 0, 0) for row in history],
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO home_entries (owner_id, entry_id, post_id, reposter_id, source_id) "
            "SELECT f.follower_id, p.id, p.id, CAST(NULL AS BIGINT), p.author_id FROM posts p "
            "JOIN follows f ON f.followee_id = p.author_id "
            "UNION ALL SELECT p.author_id, p.id, p.id, NULL, p.author_id FROM posts p"
        )
        # Statistics, as a database in service has them: without, the planner takes the
        # fresh tables for empty and the delivery statements scan them (~1 s each).
        await conn.execute("ANALYZE")
        return Data({s[1]: s[0] for s in sessions}, authors, follows)
    finally:
        await conn.close()


def token(user_id: int, session_id: int) -> str:
    from app.auth import issue_access_token

    value, _ = issue_access_token(SECRET, user_id, session_id, timedelta(hours=2))
    return value


@dataclass
class Subscriber:
    user_id: int
    token: str
    url: str
    follows: set[int]
    received: dict[str, float] = field(default_factory=dict)
    socket: Any = None
    task: asyncio.Task[None] | None = None


async def connect(sub: Subscriber, query: str = SUBSCRIBE) -> None:
    socket = await websockets.connect(
        sub.url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")], max_size=2**20,
        open_timeout=60,
    )  # fmt: skip
    await socket.send(
        json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {sub.token}"}})
    )
    ack = json.loads(await asyncio.wait_for(socket.recv(), 60))
    if ack.get("type") != "connection_ack":
        raise RuntimeError(f"connection refused: {ack}")
    await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
    sub.socket = socket


async def read(sub: Subscriber) -> None:
    try:
        async for raw in sub.socket:
            now = time.perf_counter()
            message = json.loads(raw)
            if message.get("type") == "next":
                data = message["payload"].get("data") or {}
                post = (data.get("homeTimeline") or {}).get("node")
                if post:
                    sub.received.setdefault(post["id"], now)
            elif message.get("type") == "ping":
                await sub.socket.send(json.dumps({"type": "pong"}))
    except websockets.ConnectionClosed:
        return


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def post_burst(
    urls: list[str], author_tokens: dict[int, str], count: int, concurrency: int, tag: str
) -> dict[str, tuple[int, float]]:
    """Create `count` posts by random authors; the post id -> (author, response time)."""
    returned: dict[str, tuple[int, float]] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    authors = list(author_tokens)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            author = authors[i % len(authors)]
            response = await client.post(
                urls[i % len(urls)],
                json={"query": CREATE_POST, "variables": {"input": {"text": f"{tag} {i}"}}},
                headers={"authorization": f"Bearer {author_tokens[author]}"},
            )
            done = time.perf_counter()
            result = response.json()["data"]["createPost"]
            if result["__typename"] != "CreatePostSuccess":
                raise RuntimeError(f"createPost failed: {result}")
            returned[result["post"]["id"]] = (author, done)

    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return returned


async def wait_deliveries(
    subs: list[Subscriber], posts: dict[str, tuple[int, float]], wait: float
) -> tuple[list[float], int]:
    expected = [(s, pid) for s in subs for pid, (author, _) in posts.items() if author in s.follows]
    deadline = time.perf_counter() + wait
    while time.perf_counter() < deadline:
        if all(pid in s.received for s, pid in expected):
            break
        await asyncio.sleep(0.05)
    latencies = [s.received[pid] - posts[pid][1] for s, pid in expected if pid in s.received]
    missing = sum(1 for s, pid in expected if pid not in s.received)
    return latencies, missing


async def run(args: argparse.Namespace, urls: list[str], pids: list[int]) -> dict[str, Any]:
    data: Data = args.data
    authors = data.authors
    author_tokens = {a: token(a, data.sessions[a]) for a in authors}
    ws_urls = [u.replace("http://", "ws://") for u in urls]
    subs = [
        Subscriber(uid, token(uid, data.sessions[uid]), ws_urls[i % len(ws_urls)], set(followed))
        for i, (uid, followed) in enumerate(data.follows.items())
    ]
    before = [process_tree_rss_kib(pid) for pid in pids]
    started = time.perf_counter()
    for chunk in range(0, len(subs), 100):
        await asyncio.gather(*(connect(s) for s in subs[chunk : chunk + 100]))
    log(f"{len(subs)} subscribers connected in {time.perf_counter() - started:.1f} s")
    for s in subs:
        s.task = asyncio.create_task(read(s))
    await asyncio.sleep(2)
    after = [process_tree_rss_kib(pid) for pid in pids]
    per_connection = [
        (a - b) / max(1, sum(1 for s in subs if s.url == ws_urls[i]))
        for i, (a, b) in enumerate(zip(after, before, strict=True))
    ]

    warm = await post_burst(urls, author_tokens, len(authors), args.concurrency, "warm-up")
    _, warm_missing = await wait_deliveries(subs, warm, args.timeout)
    for s in subs:
        s.received.clear()
    burst_started = time.perf_counter()
    burst = await post_burst(urls, author_tokens, args.posts, args.concurrency, "burst")
    burst_seconds = time.perf_counter() - burst_started
    latencies, missing = await wait_deliveries(subs, burst, args.timeout)
    result: dict[str, Any] = {
        "processes": len(urls),
        "subscribers": len(subs),
        "authors": len(authors),
        "follows_each": args.follows,
        "posts": args.posts,
        "burst_seconds": burst_seconds,
        "deliveries": len(latencies),
        "missing": missing,
        "warm_up_missing": warm_missing,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p90_ms": percentile(latencies, 0.90) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000 if latencies else float("nan"),
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_idle_connection": per_connection,
    }
    for s in subs:
        await s.socket.close()
    if args.max_idle:
        result["max_idle"] = await idle_probe(args, ws_urls[0], pids[0], subs)
    return result


async def idle_probe(
    args: argparse.Namespace, url: str, pid: int, subs: list[Subscriber]
) -> dict[str, Any]:
    """Open idle subscribed connections to one process in steps until --max-idle or failure
    (the subscribers' tokens are reused: a session may hold many sockets)."""
    opened: list[Subscriber] = []
    base = rss_kib(pid)
    steps = []
    failure = None
    while len(opened) < args.max_idle and failure is None:
        batch = [
            Subscriber(subs[i % len(subs)].user_id, subs[i % len(subs)].token, url, set())
            for i in range(len(opened), min(args.max_idle, len(opened) + 1000))
        ]
        try:
            for chunk in range(0, len(batch), 200):
                await asyncio.gather(*(connect(s) for s in batch[chunk : chunk + 200]))
        except Exception as exc:  # the limit is what we look for
            failure = f"{type(exc).__name__}: {exc}"
        opened += [s for s in batch if s.socket is not None]
        await asyncio.sleep(1)
        steps.append({"connections": len(opened), "rss_kib": rss_kib(pid)})
        log(f"  {len(opened)} idle connections on one process, RSS {rss_kib(pid) / 1024:.0f} MiB")
    for s in opened:
        await s.socket.close()
    last = steps[-1] if steps else {"connections": 0, "rss_kib": base}
    return {
        "held": last["connections"],
        "rss_kib": last["rss_kib"],
        "kib_per_connection": (last["rss_kib"] - base) / max(1, last["connections"]),
        "stopped_by": failure or f"--max-idle {args.max_idle}",
        "steps": steps,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres-url", default=os.environ.get(
        "BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"))  # fmt: skip
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/10")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--authors", type=int, default=50)
    parser.add_argument("--follows", type=int, default=5)
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--history", type=int, default=40, help="earlier posts per author")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--max-idle", type=int, default=0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--base-port", type=int, default=8710)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    return parser.parse_args()


async def _recreate(admin_url: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await conn.close()


def main() -> None:
    args = parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the servers
    db_url = with_database(args.postgres_url, DATABASE)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HOLDFAST_")},
        "HOLDFAST_DATABASE_URL": db_url,
        "HOLDFAST_REDIS_URL": args.redis_url,
        "HOLDFAST_SECRET_KEY": SECRET,
        "HOLDFAST_ENV": "development",
        "HOLDFAST_LOG_LEVEL": "WARNING",
        "HOLDFAST_GRAPHQL__REQUESTS_PER_VIEWER": "1000000/minute",
        "HOLDFAST_DATA_DIR": "/tmp/holdfast-bench-live",
        # The servers lease node ids below the one this script writes its rows with.
        "HOLDFAST_NODES__LAST_ID": "1000",
        # The database is flushed above: a short lease, so the servers' wait for node ids
        # after losing the lease records is short too.
        "HOLDFAST_NODES__LEASE_SECONDS": "4",
        "HOLDFAST_NODES__RENEW_SECONDS": "1",
    }
    asyncio.run(_recreate(args.postgres_url))
    subprocess.run([str(BIN / "holdfast"), "migrate"], env=env, check=True, cwd=ROOT)
    subprocess.run(["redis-cli", "-u", args.redis_url, "FLUSHDB"], check=True, capture_output=True)
    args.data = asyncio.run(create_data(db_url, args))
    log(f"{args.authors} authors, {args.subscribers} subscribers following {args.follows} each")
    ports = [args.base_port + i for i in range(args.processes)]
    urls = [f"http://127.0.0.1:{port}/graphql" for port in ports]
    with ExitStack() as stack:
        pids = [
            stack.enter_context(
                server(
                    f"live-{i}",
                    [str(BIN / "holdfast"), "serve", "--no-migrate", "--port", str(port)],
                    env,
                    url,
                )
            )
            for i, (url, port) in enumerate(zip(urls, ports, strict=True))
        ]  # fmt: skip
        result = asyncio.run(run(args, urls, pids))
    result["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["cpus"] = os.cpu_count()
    report(result)
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"live-{result['date'].replace(':', '')}.json"
    path.write_text(json.dumps(result, indent=2))
    log(f"results: {path.relative_to(ROOT)}")


def report(result: dict[str, Any]) -> None:
    log(
        f"{result['subscribers']} subscribers over {result['processes']} processes, "
        f"{result['posts']} posts by {result['authors']} authors ({result['follows_each']} "
        f"followed each) in {result['burst_seconds']:.1f} s: {result['deliveries']:,} "
        f"deliveries, {result['missing']} missing"
    )
    log(
        f"mutation response -> receipt: p50 {result['p50_ms']:.1f} ms, p90 {result['p90_ms']:.1f} "
        f"ms, p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms"
    )
    kib = ", ".join(f"{v:.1f}" for v in result["kib_per_idle_connection"])
    log(f"memory per idle subscribed connection (KiB, per process): {kib}")
    if "max_idle" in result:
        idle = result["max_idle"]
        log(
            f"one process held {idle['held']:,} idle subscribed connections "
            f"({idle['rss_kib'] / 1024:.0f} MiB RSS, {idle['kib_per_connection']:.1f} KiB each; "
            f"stopped by {idle['stopped_by']})"
        )


if __name__ == "__main__":
    main()
