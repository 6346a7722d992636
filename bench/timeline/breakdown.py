"""Where one home-timeline request's time goes, measured in process, one request at a time.

Times each layer of the GraphQL request (wall clock and this process's CPU) against the same
seeded database, then the raw handler's, and how long PostgreSQL takes to plan and run each
statement. Needs the environment of the benchmark (HOLDFAST_DATABASE_URL of a seeded
PostgreSQL database; HOLDFAST_SECRET_KEY optional):

  HOLDFAST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/holdfast_bench_10000_1000000 \
  .venv/bin/python -m bench.timeline.breakdown --iterations 300
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any
from unittest.mock import patch

import asyncpg  # type: ignore[import-untyped]
import orjson
from tortoise import connections

from app import auth
from app.main import create_app
from app.seed import SEED_PASSWORD
from app.services.paging import PageRequest
from app.settings import load_settings
from bench.timeline import QUERY
from bench.timeline.raw import PAGE_SQL, page_json, page_values
from bench.timeline.raw import create_app as create_raw_app


class Timer:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float, str]] = []

    async def measure(
        self, name: str, make: Callable[[], Awaitable[Any]], iterations: int, note: str = ""
    ) -> Any:
        result = None
        for _ in range(min(20, iterations)):  # warm caches (statements, plans, validation)
            result = await make()
        walls, cpus = [], []
        for _ in range(iterations):
            wall, cpu = time.perf_counter(), time.process_time()
            result = await make()
            cpus.append(time.process_time() - cpu)
            walls.append(time.perf_counter() - wall)
        self.rows.append((name, statistics.mean(walls) * 1e6, statistics.mean(cpus) * 1e6, note))
        return result

    def print(self) -> None:
        print(f"{'':62} {'wall µs':>9} {'CPU µs':>9}")
        for name, wall, cpu, note in self.rows:
            print(f"{name:62} {wall:9.0f} {cpu:9.0f}  {note}")


async def asgi_request(app: Any, body: bytes, token: str) -> bytes:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", f"Bearer {token}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return b"".join(chunks)


async def statement_times(
    url: str, statements: list[tuple[str, list[Any]]], iterations: int
) -> list[tuple[str, float, float]]:
    """Mean ms of each statement with PostgreSQL's default plan choice and with one generic
    plan, on a direct connection (prepared, as asyncpg does)."""
    out = []
    for mode in ("auto", "force_generic_plan"):
        conn = await asyncpg.connect(url, server_settings={"plan_cache_mode": mode, "jit": "off"})
        try:
            for text, values in statements:
                for _ in range(10):
                    await conn.fetch(text, *values)
                started = time.perf_counter()
                for _ in range(iterations):
                    await conn.fetch(text, *values)
                elapsed = (time.perf_counter() - started) / iterations * 1e3
                out.append((mode, elapsed, float(len(text))))
        finally:
            await conn.close()
    return out


async def main(args: argparse.Namespace) -> None:
    settings = load_settings()
    app = create_app(settings)
    n = args.iterations
    timer = Timer()
    async with app.router.lifespan_context(app):
        services = app.state.services
        schema = getattr(app.routes[0], "endpoint").schema  # the GraphQLView  # noqa: B009
        url = settings.effective_database_url
        conn = await asyncpg.connect(url)
        username = await conn.fetchval(
            "SELECT u.username FROM users u WHERE (SELECT COUNT(*) FROM (SELECT 1 FROM "
            "home_entries e WHERE e.owner_id = u.id LIMIT 800) x) >= 800 ORDER BY u.id LIMIT 1"
        )
        await conn.close()
        signed = await services.accounts.log_in(
            login=username, password=SEED_PASSWORD, client_ip="127.0.0.1"
        )
        token = signed.tokens.access_token
        key = settings.signing_key()
        viewer = await services.accounts.resolve_viewer(token)
        assert viewer is not None
        big = settings.timelines.fanout_max_followers
        print(f"viewer {username}; {n} iterations each, one at a time\n")

        # Which statements a request runs, and their share of the time.
        client = connections.get("default")
        calls: list[tuple[str, float, float]] = []
        captured: list[tuple[str, list[Any]]] = []
        original = client.execute_query_dict

        async def counted(query: str, values: list[Any] | None = None) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return await original(query, values)
            finally:
                calls.append((query, time.perf_counter() - wall, time.process_time() - cpu))
                captured.append((query, list(values or [])))

        client.execute_query_dict = counted
        body = orjson.dumps({"query": QUERY})
        calls.clear()
        captured.clear()
        await asgi_request(app, body, token)
        statements = list(captured)
        print(f"GraphQL request: {len(statements)} SQL statements")
        calls.clear()
        await timer.measure(
            "GraphQL: whole request in process (ASGI app)",
            lambda: asgi_request(app, body, token),
            n,
        )
        per_request = len(calls) / (n + min(20, n))
        sql_wall = sum(c[1] for c in calls) / (n + min(20, n)) * 1e6
        sql_cpu = sum(c[2] for c in calls) / (n + min(20, n)) * 1e6
        timer.rows.append(
            (
                f"  of which SQL round trips ({per_request:.0f} statements, Tortoise+asyncpg)",
                sql_wall,
                sql_cpu,
                "CPU = client side; wall - CPU = waiting for PostgreSQL",
            )
        )
        client.execute_query_dict = original

        await timer.measure(
            "  viewer lookup: JWT + session row (resolve_viewer)",
            lambda: services.accounts.resolve_viewer(token),
            n,
        )

        async def jwt_only() -> Any:
            return auth.read_access_token(key, token)

        await timer.measure("    of which JWT decode", jwt_only, n)
        request = PageRequest.parse("home", first=20)
        page = await timer.measure(
            "  timelines.home: SQL + rows to dataclasses",
            lambda: services.timelines.home(viewer.user.id, request),
            n,
        )

        from schema.context import Context

        class FakeRequest:
            headers: dict[str, str] = {}
            client = None

        async def execute() -> Any:
            context = Context(request=FakeRequest(), services=services, viewer=viewer)  # type: ignore[arg-type]
            result = await schema.execute(QUERY, context_value=context)
            assert not result.errors, result.errors
            return result

        result = await timer.measure(
            "  schema.execute (with SQL, no HTTP, no viewer lookup)", execute, n
        )
        execution_cpu = 0.0

        async def prefetched(*_: Any) -> Any:
            return page

        prefetching = patch.object(services.timelines, "home", prefetched)
        prefetching.start()
        try:
            await timer.measure(
                "  schema.execute with the page prefetched (no SQL)",
                execute,
                n,
                "parse/validate caches + execution of ~300 fields",
            )
            execution_cpu = timer.rows[-1][2]
            from graphql import parse as gql_parse
            from graphql import validate

            document = gql_parse(QUERY)

            async def parse_only() -> Any:
                return gql_parse(QUERY)

            async def validate_only() -> Any:
                return validate(schema._schema, document)

            await timer.measure("    uncached parse (for scale)", parse_only, n)
            await timer.measure("    uncached validate (for scale)", validate_only, n)
            if args.cprofile:
                import cProfile
                import pstats

                profiler = cProfile.Profile()
                profiler.enable()
                for _ in range(n):
                    await execute()
                profiler.disable()
                print(f"\ncProfile of {n} executions with the page prefetched (no SQL):")
                pstats.Stats(profiler).sort_stats("tottime").print_stats(18)
        finally:
            prefetching.stop()

        def count_fields(value: Any) -> int:
            if isinstance(value, dict):
                return len(value) + sum(count_fields(v) for v in value.values())
            if isinstance(value, list):
                return sum(count_fields(v) for v in value)
            return 0

        fields = count_fields(result.data)
        print(f"the response has {fields} fields ({execution_cpu / fields:.1f} µs of CPU a field)")

        async def encode() -> Any:
            return orjson.dumps({"data": result.data})

        await timer.measure("  JSON encoding of the response (orjson)", encode, n)

        # The raw handler, same process, same database.
        raw_app = create_raw_app(url, key, big)
        async with raw_app.router.lifespan_context(raw_app):
            await timer.measure(
                "raw: whole request in process (ASGI app)",
                lambda: asgi_request(raw_app, body, token),
                n,
            )
        pool = await asyncpg.create_pool(
            url,
            min_size=1,
            max_size=1,
            server_settings={"plan_cache_mode": "force_generic_plan", "jit": "off"},
        )
        claims = auth.read_access_token(key, token)
        assert claims is not None
        rows = await timer.measure(
            "  raw: the one statement (generic plan)",
            lambda: pool.fetch(PAGE_SQL, *page_values(claims.session_id, claims.user_id, big)),
            n,
        )

        async def raw_json() -> Any:
            return page_json(rows)

        await timer.measure("  raw: rows to JSON", raw_json, n)
        await pool.close()
        timer.print()

        print("\nPostgreSQL time per statement of the GraphQL request, direct connection (ms):")
        timings = await statement_times(url, statements, max(50, n // 2))
        half = len(timings) // 2
        for i, (text, _) in enumerate(statements):
            first_line = " ".join(text.split())[:70]
            print(
                f"  {timings[i][1]:6.2f} default plans, {timings[half + i][1]:6.2f} generic: "
                f"{first_line}"
            )
        raw_times = await statement_times(
            url,
            [(PAGE_SQL, page_values(claims.session_id, claims.user_id, big))],
            max(50, n // 2),
        )
        print(
            f"  {raw_times[0][1]:6.2f} default plans, {raw_times[1][1]:6.2f} generic: "
            "the raw handler's one statement"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--cprofile", action="store_true", help="cProfile the execution")
    asyncio.run(main(parser.parse_args()))
