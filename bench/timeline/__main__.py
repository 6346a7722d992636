"""Benchmark the GraphQL home timeline against the raw Starlette + asyncpg baseline.

1. Seeds a PostgreSQL database with `holdfast seed` (or reuses one with the same counts).
2. Starts the real app (`holdfast serve --no-migrate`, one worker) and the raw server
   (`bench/timeline/raw.py`) on 127.0.0.1, both pinned to one core with `taskset`.
3. Signs in a few seeded accounts with full home timelines (GraphQL `logIn`).
4. Checks that both servers return the same JSON for each of them, and stops if not.
5. Drives each with wrk (pinned to another core), alternating which goes first in each
   round, and reports requests/s, p50 and p99 per round, their medians and the ratio
   GraphQL/raw of the median requests/s. With --profile, samples the GraphQL server with
   py-spy during one more round and summarises where its CPU time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx

from app import sql
from app.seed import SEED_PASSWORD
from app.services.views import gives_access, premium
from bench.timeline import QUERY

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BIN = Path(sys.executable).parent
LUA = HERE / "home.lua"

# The floor of the ratio GraphQL/raw of median requests/s (issue 11: at least 0.60).
FLOOR = 0.60

LOG_IN = """
mutation($input: LogInInput!) {
  logIn(input: $input) {
    __typename
    ... on LogInSuccess { session { accessToken } }
    ... on LogInError { code message }
  }
}"""


@dataclass
class Result:
    round: int
    server: str
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    errors: int
    server_cpu: float  # share of one core the server process used
    server_cpu_us: float  # its CPU time per request
    postgres_cpu_us: float  # PostgreSQL's CPU time per request (all its processes)


def log(message: str) -> None:
    print(message, flush=True)


def with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


# --- the data set ------------------------------------------------------------------------


async def _counts(url: str) -> tuple[int, int] | None:
    try:
        conn = await asyncpg.connect(url)
    except asyncpg.InvalidCatalogNameError:
        return None
    try:
        exists = await conn.fetchval("SELECT to_regclass('posts') IS NOT NULL")
        if not exists:
            return (0, 0)
        users = await conn.fetchval("SELECT COUNT(*) FROM users")
        posts = await conn.fetchval("SELECT COUNT(*) FROM posts")
        return int(users), int(posts)
    finally:
        await conn.close()


async def _recreate(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def ensure_data(args: argparse.Namespace, env: dict[str, str]) -> None:
    url = env["HOLDFAST_DATABASE_URL"]
    counts = asyncio.run(_counts(url))
    if counts == (args.users, args.posts) and not asyncio.run(_seeded_with_premium(url)):
        log(
            f"database {args.database} has no SUBSCRIBERS posts or no live premium access "
            "(seeded by older code, or its subscriptions lapsed): seeding it again"
        )
    elif counts == (args.users, args.posts):
        log(f"reusing database {args.database} ({args.users:,} users, {args.posts:,} posts)")
        # Bring a database seeded by older code up to the current schema.
        subprocess.run([str(BIN / "holdfast"), "migrate"], env=env, check=True, cwd=ROOT)
        return
    log(f"seeding database {args.database} ({args.users:,} users, {args.posts:,} posts)")
    asyncio.run(_recreate(args.postgres_url, args.database))
    started = time.perf_counter()
    subprocess.run(
        [str(BIN / "holdfast"), "seed", "--users", str(args.users), "--posts", str(args.posts)],
        env=env,
        check=True,
        timeout=3_600,
    )
    log(f"seeded in {time.perf_counter() - started:.1f} s")


async def _database_settings(url: str, name: str, generic_plans: bool) -> None:
    """With `generic_plans`, every new connection to the benchmark database (the app's pool
    included) plans a prepared statement once (plan_cache_mode = force_generic_plan) and
    never JIT-compiles (jit = off); without, PostgreSQL's defaults, as the app runs today."""
    conn = await asyncpg.connect(url)
    try:
        for setting, value in (("plan_cache_mode", "force_generic_plan"), ("jit", "off")):
            if generic_plans:
                await conn.execute(f'ALTER DATABASE "{name}" SET {setting} = {value}')
            else:
                await conn.execute(f'ALTER DATABASE "{name}" RESET {setting}')
    finally:
        await conn.close()


_FULL_ACCOUNTS = f"""
SELECT u.username, {premium("u.id")} AS premium FROM users u
WHERE (SELECT COUNT(*) FROM (SELECT 1 FROM home_entries e
                             WHERE e.owner_id = u.id LIMIT :cap) x) >= :cap
ORDER BY u.id
"""
_FULLEST_ACCOUNTS = f"""
SELECT f.username, {premium("f.id")} AS premium FROM (
  SELECT u.id, u.username, COUNT(*) AS entries FROM users u
  JOIN home_entries e ON e.owner_id = u.id
  GROUP BY u.id, u.username ORDER BY COUNT(*) DESC, u.username LIMIT :limit) f
ORDER BY f.entries DESC, f.username
"""


async def _viewers(url: str, count: int, cap: int) -> dict[str, bool]:
    """Accounts whose home timelines are full (the fan-out cap), else the fullest: half with
    premium access (they see SUBSCRIBERS posts), half without, when there are enough of
    each; by username, each with whether it has premium access."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(*_statement(_FULL_ACCOUNTS, {"cap": cap}))
        if len(rows) < count:
            rows = await conn.fetch(*_statement(_FULLEST_ACCOUNTS, {"limit": count * 20}))
    finally:
        await conn.close()
    premium_ones = [r for r in rows if r["premium"]]
    others = [r for r in rows if not r["premium"]]
    take = min(len(premium_ones), max(count // 2, count - len(others)))
    chosen = premium_ones[:take] + others[: count - take]
    return {r["username"]: r["premium"] for r in sorted(chosen, key=lambda r: r["username"])}


def _statement(text: str, params: dict[str, Any]) -> list[Any]:
    statement, values = sql.prepare_for(True, text, params)  # binds :now
    return [statement, *values]


async def _seeded_with_premium(url: str) -> bool:
    """The database has SUBSCRIBERS posts and accounts with premium access now (seeded by the
    current seed, and its subscriptions have not lapsed)."""
    conn = await asyncpg.connect(url)
    try:
        statement = (
            "SELECT EXISTS (SELECT 1 FROM posts WHERE visibility = 'subscribers') AND EXISTS "
            f"(SELECT 1 FROM subscriptions s WHERE {gives_access('s')}) AS ready"
        )
        return bool(await conn.fetchval(*_statement(statement, {})))
    except asyncpg.UndefinedTableError:
        return False
    finally:
        await conn.close()


# --- servers -------------------------------------------------------------------------------


def pinned(cpu: int | None, command: list[str]) -> list[str]:
    if cpu is None or shutil.which("taskset") is None:
        return command
    return ["taskset", "-c", str(cpu), *command]


@contextmanager
def server(name: str, command: list[str], env: dict[str, str], ready_url: str) -> Iterator[int]:
    """Start a server process, wait until it answers, stop it afterwards (it alone)."""
    with tempfile.NamedTemporaryFile(
        prefix=f"bench-{name}-", suffix=".log", delete=False
    ) as logfile:
        process = subprocess.Popen(
            command, env=env, stdout=logfile, stderr=subprocess.STDOUT, cwd=ROOT
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited: see {logfile.name}")
                try:
                    if httpx.post(ready_url, json={}, timeout=1).status_code < 500:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start in 30 s: see {logfile.name}")
                time.sleep(0.2)
            yield process.pid
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def log_in(url: str, username: str) -> str:
    response = httpx.post(
        url,
        json={
            "query": LOG_IN,
            "variables": {"input": {"login": username, "password": SEED_PASSWORD}},
        },
        timeout=30,
    )
    result = response.json()["data"]["logIn"]
    if result["__typename"] != "LogInSuccess":
        raise RuntimeError(f"cannot sign in {username}: {result}")
    return str(result["session"]["accessToken"])


def first_difference(a: Any, b: Any, path: str = "$") -> str | None:
    if type(a) is not type(b):
        return f"{path}: {a!r} != {b!r}"
    if isinstance(a, dict):
        for key in list(dict.fromkeys([*a, *b])):
            if key not in a or key not in b:
                return f"{path}.{key}: missing on one side"
            found = first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items != {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


def check_same(urls: dict[str, str], tokens: dict[str, str]) -> dict[str, Any]:
    """Both servers must answer each viewer with the same JSON; stops the run if not."""
    identical_bytes = True
    counts = {"edges": 0, "bytes": 0, "reposts": 0, "replies": 0, "quotes": 0, "subscribers": 0}
    for username, token in tokens.items():
        bodies = {}
        for name, url in urls.items():
            response = httpx.post(
                url,
                json={"query": QUERY},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            response.raise_for_status()
            bodies[name] = response.content
        parsed = {name: json.loads(body) for name, body in bodies.items()}
        graphql, raw = parsed["graphql"], parsed["raw"]
        if "errors" in graphql or not graphql["data"]["homeTimeline"]["edges"]:
            raise SystemExit(f"GraphQL answered {username} with no page: {bodies['graphql']!r}")
        difference = first_difference(graphql, raw)
        if difference:
            raise SystemExit(
                f"FAIL: the servers disagree for {username} at {difference}\n"
                f"graphql: {bodies['graphql'][:2000]!r}\nraw:     {bodies['raw'][:2000]!r}"
            )
        identical_bytes &= bodies["graphql"] == bodies["raw"]
        edges = graphql["data"]["homeTimeline"]["edges"]
        counts["edges"] += len(edges)
        counts["bytes"] += len(bodies["graphql"])
        counts["reposts"] += sum(1 for e in edges if e["repostedBy"])
        counts["replies"] += sum(1 for e in edges if e["node"]["replyTo"])
        counts["quotes"] += sum(1 for e in edges if e["node"]["quoteOf"])
        counts["subscribers"] += sum(1 for e in edges if e["node"]["visibility"] == "SUBSCRIBERS")
    log(
        f"same JSON from both servers for {len(tokens)} viewers "
        f"({'byte-identical' if identical_bytes else 'equal when parsed'}); their pages hold "
        f"{counts['edges']} posts, {counts['reposts']} via reposts, {counts['replies']} with "
        f"replyTo, {counts['quotes']} with quoteOf, {counts['subscribers']} for subscribers; "
        f"{counts['bytes'] // len(tokens):,} bytes "
        "a page on average"
    )
    return {"identical_bytes": identical_bytes, **counts}


# --- load ------------------------------------------------------------------------------------


_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def cpu_usage(server_pid: int) -> tuple[float, float]:
    """CPU seconds used so far by the server process and by all PostgreSQL processes."""
    return _cpu_seconds(server_pid), sum(_cpu_seconds(p) for p in _postgres_pids())


def run_wrk(
    args: argparse.Namespace, url: str, tokens: list[str], seconds: int, server_pid: int = 0
) -> dict[str, Any]:
    env = {
        **os.environ,
        "BENCH_BODY": json.dumps({"query": QUERY}),
        "BENCH_TOKENS": ",".join(tokens),
    }
    command = pinned(
        args.client_cpu,
        [
            "wrk",
            "-t1",
            f"-c{args.connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA),
            url,
        ],
    )
    before = cpu_usage(server_pid) if server_pid else (0.0, 0.0)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60)
    after = cpu_usage(server_pid) if server_pid else (0.0, 0.0)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("BENCH_RESULT "))
            requests = max(1, result["requests"])
            result["server_cpu"] = (after[0] - before[0]) / result["seconds"]
            result["server_cpu_us"] = (after[0] - before[0]) / requests * 1e6
            result["postgres_cpu_us"] = (after[1] - before[1]) / requests * 1e6
            return result
    raise RuntimeError(f"wrk failed: {done.stdout}\n{done.stderr}")


def profile_round(args: argparse.Namespace, pid: int, url: str, tokens: list[str]) -> None:
    py_spy = shutil.which("py-spy") or str(BIN / "py-spy")
    if not Path(py_spy).exists():
        log("py-spy is not installed (.venv/bin/pip install py-spy): no profile")
        return
    out = Path(args.results) / "graphql-profile.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    seconds = args.duration
    spy = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(out),
            *(["--native"] if args.native else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)
    result = run_wrk(args, url, tokens, seconds, pid)
    spy.wait(timeout=seconds + 60)
    log(
        f"\nprofiled round (py-spy sampling alongside): {result['rps']:.0f} req/s, server CPU "
        f"{result['server_cpu_us']:.0f} µs/req, PostgreSQL {result['postgres_cpu_us']:.0f} µs/req"
    )
    from bench.timeline.profile import summarize

    log(summarize(out, result["server_cpu_us"]))


# --- the run ---------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.timeline", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=15, help="seconds per measured run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3, help="seconds per server, unmeasured")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--viewers", type=int, default=8, help="signed-in accounts to cycle")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="an admin URL; the benchmark creates its own database next to it",
    )
    parser.add_argument("--database", help="default: holdfast_bench_<users>_<posts>")
    parser.add_argument("--graphql-port", type=int, default=8765)
    parser.add_argument("--raw-port", type=int, default=8766)
    cpus = os.cpu_count() or 1
    parser.add_argument("--server-cpu", type=int, default=cpus - 1 if cpus > 1 else None)
    parser.add_argument("--client-cpu", type=int, default=0 if cpus > 1 else None)
    parser.add_argument(
        "--raw-plan-cache-mode",
        default="force_generic_plan",
        choices=["auto", "force_generic_plan", "force_custom_plan"],
        help="the raw server's PostgreSQL plan_cache_mode (auto: PostgreSQL's default)",
    )
    parser.add_argument(
        "--app-generic-plans",
        action="store_true",
        help="also set plan_cache_mode = force_generic_plan and jit = off on the benchmark "
        "database (the app's pool sets both itself since app/db.py PooledConnection)",
    )
    parser.add_argument("--app-log-level", default="WARNING", help="INFO adds access logs")
    parser.add_argument("--profile", action="store_true", help="py-spy one more GraphQL round")
    parser.add_argument("--native", action="store_true", help="py-spy --native (Cython too)")
    parser.add_argument("--results", default=str(HERE.parent / "results"))
    args = parser.parse_args()
    args.database = args.database or f"holdfast_bench_{args.users}_{args.posts}"
    return args


def main() -> None:
    args = parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    database_url = with_database(args.postgres_url, args.database)
    data_dir = tempfile.mkdtemp(prefix="holdfast-bench-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOLDFAST_")}
    env.update(
        {
            "HOLDFAST_DATABASE_URL": database_url,
            "HOLDFAST_DATA_DIR": data_dir,
            "HOLDFAST_SECRET_KEY": secrets.token_urlsafe(48),
            "HOLDFAST_LOG_LEVEL": args.app_log_level,
            "HOLDFAST_AUTH__ACCESS_TOKEN_TTL": "86400",
            "HOLDFAST_AUTH__LOGIN_ATTEMPTS_PER_IP": "1000/minute",
            # Still counted on every request, as in production, but never refused here.
            "HOLDFAST_GRAPHQL__REQUESTS_PER_VIEWER": "100000000/minute",
        }
    )
    ensure_data(args, env)
    asyncio.run(_database_settings(database_url, args.database, args.app_generic_plans))
    urls = {
        "graphql": f"http://127.0.0.1:{args.graphql_port}/graphql",
        "raw": f"http://127.0.0.1:{args.raw_port}/graphql",
    }
    app_command = pinned(
        args.server_cpu,
        [
            str(BIN / "holdfast"),
            "serve",
            "--no-migrate",
            "--host",
            "127.0.0.1",
            "--port",
            str(args.graphql_port),
        ],
    )
    raw_command = pinned(
        args.server_cpu,
        [
            sys.executable,
            "-m",
            "bench.timeline.raw",
            "--port",
            str(args.raw_port),
            "--plan-cache-mode",
            args.raw_plan_cache_mode,
        ],
    )
    log(
        f"home timeline, 20 posts a page; {args.users:,} users, {args.posts:,} posts; "
        f"wrk -t1 -c{args.connections} {args.duration:g} s x {args.rounds} rounds; "
        f"servers on cpu {args.server_cpu}, wrk on cpu {args.client_cpu}, "
        f"PostgreSQL unpinned; {os.cpu_count()} cpus; plan_cache_mode: app "
        "force_generic_plan, jit off (its pool's settings, app/db.py)"
        f", raw {args.raw_plan_cache_mode}, jit off"
    )
    with (
        server("graphql", app_command, env, urls["graphql"]) as graphql_pid,
        server("raw", raw_command, env, urls["raw"]) as raw_pid,
    ):
        pids = {"graphql": graphql_pid, "raw": raw_pid}
        viewers = asyncio.run(_viewers(database_url, args.viewers, 800))
        tokens = {name: log_in(urls["graphql"], name) for name in viewers}
        log(
            "viewers: "
            + ", ".join(f"{name}{' (premium)' if paid else ''}" for name, paid in viewers.items())
        )
        check = check_same(urls, tokens)
        token_list = list(tokens.values())
        for url in urls.values():
            if args.warmup:
                run_wrk(args, url, token_list, args.warmup)
        results: list[Result] = []
        for round_ in range(1, args.rounds + 1):
            order = list(urls) if round_ % 2 else list(reversed(urls))
            for name in order:
                r = run_wrk(args, urls[name], token_list, args.duration, pids[name])
                if r["errors"]:
                    raise SystemExit(f"{name}: {r['errors']} errors in round {round_}: {r}")
                results.append(
                    Result(
                        round_,
                        name,
                        r["rps"],
                        r["p50_ms"],
                        r["p90_ms"],
                        r["p99_ms"],
                        r["max_ms"],
                        r["requests"],
                        r["errors"],
                        r["server_cpu"],
                        r["server_cpu_us"],
                        r["postgres_cpu_us"],
                    )
                )
                log(
                    f"round {round_}  {name:8} {r['rps']:8.1f} req/s  p50 {r['p50_ms']:7.2f} ms"
                    f"  p99 {r['p99_ms']:7.2f} ms   server cpu {r['server_cpu']:4.0%}"
                    f" {r['server_cpu_us']:5.0f} µs/req, PostgreSQL {r['postgres_cpu_us']:5.0f}"
                    " µs/req"
                )
        # The pages must still agree after the load (nothing cached a wrong answer).
        check_same(urls, tokens)
        summary = report(args, results, check)
        if args.profile:
            profile_round(args, graphql_pid, urls["graphql"], token_list)
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"timeline-{args.users}-{args.posts}-{stamp}.json").write_text(
        json.dumps(summary, indent=2) + "\n"
    )
    shutil.rmtree(data_dir, ignore_errors=True)


def report(
    args: argparse.Namespace, results: list[Result], check: dict[str, Any]
) -> dict[str, Any]:
    medians: dict[str, dict[str, float]] = {}
    for name in ("graphql", "raw"):
        mine = [r for r in results if r.server == name]
        medians[name] = {
            "rps": statistics.median(r.rps for r in mine),
            "p50_ms": statistics.median(r.p50_ms for r in mine),
            "p99_ms": statistics.median(r.p99_ms for r in mine),
            "server_cpu_us": statistics.median(r.server_cpu_us for r in mine),
            "postgres_cpu_us": statistics.median(r.postgres_cpu_us for r in mine),
        }
    per_round = []
    for round_ in range(1, args.rounds + 1):
        by = {r.server: r for r in results if r.round == round_}
        per_round.append(by["graphql"].rps / by["raw"].rps)
    ratio = medians["graphql"]["rps"] / medians["raw"]["rps"]
    log("")
    log(
        f"{'server':8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'server µs/req':>14}"
        f" {'PostgreSQL µs/req':>18}   (medians of {args.rounds} rounds)"
    )
    for name, m in medians.items():
        log(
            f"{name:8} {m['rps']:9.1f} {m['p50_ms']:8.2f} {m['p99_ms']:8.2f}"
            f" {m['server_cpu_us']:14.0f} {m['postgres_cpu_us']:18.0f}"
        )
    log(
        f"ratio GraphQL/raw (median req/s): {ratio:.3f}   per round: "
        + ", ".join(f"{x:.3f}" for x in per_round)
        + f"   floor {FLOOR:.2f}: {'met' if ratio >= FLOOR else 'NOT met'}"
    )
    return {
        "users": args.users,
        "posts": args.posts,
        "duration": args.duration,
        "rounds": args.rounds,
        "connections": args.connections,
        "server_cpu": args.server_cpu,
        "client_cpu": args.client_cpu,
        "check": check,
        "results": [asdict(r) for r in results],
        "medians": medians,
        "ratio": ratio,
        "ratio_per_round": per_round,
    }


if __name__ == "__main__":
    main()
