"""The fleet (app/hosting/fleet.py and `holdfast fleet`): planned, applied and recorded against
real compute backends (libcloud's EC2 driver against moto's EC2 server, libcloud's dummy
driver), health-checked against a real local HTTP server, recorded on the run's database
(SQLite, or PostgreSQL with TEST_DATABASE=postgres)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from libcloud.compute.types import NodeState as LibcloudState
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from app.hosting import fleet
from app.hosting.userdata import render_user_data
from app.models import FleetNode
from app.settings import Settings
from providers.compute.base import Node, NodeState
from tests.compute import COMPUTE_BACKENDS, MOTO_NAMESPACE, ComputeHarness, harness_for
from tests.conftest import fresh_database, make_settings
from tests.live import served_in_loop
from tests.servers import MotoServer, start_moto_server
from tests.support import HOLDFAST, holdfast_env

FLEET = "testfleet"
HERE = "here"
OURS = {fleet.TAG_FLEET: FLEET, fleet.TAG_COMPUTE: HERE}


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    with start_moto_server() as server:
        yield server


@pytest.fixture(params=COMPUTE_BACKENDS)
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[ComputeHarness]:
    harness = harness_for(request.param, request)
    try:
        yield harness
    finally:
        await harness.close()


def roles(harness: ComputeHarness, web: int = 2, worker: int = 1) -> dict[str, Any]:
    spec = {"size": harness.size, "image": harness.image, "location": harness.location}
    return {
        "web": {**spec, "count": web},
        "worker": {**spec, "count": worker},
        "scheduler": {**spec, "count": 1},
    }


def fleet_settings(
    data_dir: Path,
    database_url: str,
    harness: ComputeHarness,
    *,
    web: int = 2,
    worker: int = 1,
    health_url: str = "https://{ip}/healthz",
) -> Settings:
    return make_settings(
        data_dir,
        database_url,
        compute={
            "providers": {
                HERE: {
                    "provider": "libcloud",
                    "options": harness.options,
                    "roles": roles(harness, web, worker),
                    "database_url": "postgres://db.internal/holdfast",
                }
            },
            "active": HERE,
        },
        fleet={"name": FLEET, "health_url": health_url},
    )


@pytest.fixture
def settings_for(data_dir: Path, database_url: str, harness: ComputeHarness) -> Any:
    def make(**changes: Any) -> Settings:
        return fleet_settings(data_dir, database_url, harness, **changes)

    return make


def slots(nodes: list[Node] | tuple[Node, ...]) -> list[tuple[str, str]]:
    return sorted((n.tags[fleet.TAG_ROLE], n.tags[fleet.TAG_INDEX]) for n in nodes)


ALL_SLOTS = [("scheduler", "0"), ("web", "0"), ("web", "1"), ("worker", "0")]
ONE_EACH = [("scheduler", "0"), ("web", "0"), ("worker", "0")]


async def test_plan_shows_what_to_create_and_changes_nothing(
    harness: ComputeHarness, settings_for: Any
) -> None:
    settings = settings_for()
    provider = harness.provider
    planned = await fleet.plan(settings, HERE, provider)
    assert planned.changes == 4
    assert planned.destroy == ()
    assert planned.keep == ()
    names = sorted(spec.name for spec in planned.create)
    assert names == [
        "testfleet-here-scheduler-0",
        "testfleet-here-web-0",
        "testfleet-here-web-1",
        "testfleet-here-worker-0",
    ]
    web = next(spec for spec in planned.create if spec.name == "testfleet-here-web-1")
    assert dict(web.tags) == {**OURS, fleet.TAG_ROLE: "web", fleet.TAG_INDEX: "1"}
    assert web.user_data == render_user_data(settings, HERE, "web")
    assert (web.size, web.image, web.location) == (harness.size, harness.image, harness.location)
    assert "+ testfleet-here-web-1" in planned.render()
    assert await provider.list_nodes(OURS) == []


async def test_apply_creates_tagged_nodes_with_user_data_and_is_idempotent(
    harness: ComputeHarness, settings_for: Any
) -> None:
    settings = settings_for()
    provider = harness.provider
    done = await fleet.apply(settings, HERE, provider)
    assert len(done.create) == 4

    nodes = await provider.list_nodes(OURS)
    assert slots(nodes) == ALL_SLOTS
    for node in nodes:
        role = node.tags[fleet.TAG_ROLE]
        assert node.name == f"testfleet-here-{role}-{node.tags[fleet.TAG_INDEX]}"
        assert await harness.user_data(node.id) == render_user_data(settings, HERE, role)  # type: ignore[arg-type]

    again = await fleet.plan(settings, HERE, provider)
    assert again.changes == 0
    assert slots(again.keep) == ALL_SLOTS
    second = await fleet.apply(settings, HERE, provider)
    assert second.create == ()
    assert second.destroy == ()
    assert sorted(n.id for n in await provider.list_nodes(OURS)) == sorted(n.id for n in nodes)


async def test_scaling_down_destroys_surplus_only_and_never_foreign_nodes(
    harness: ComputeHarness, settings_for: Any
) -> None:
    provider = harness.provider
    untagged = await harness.foreign_node()
    other_fleet = await harness.foreign_node(
        {fleet.TAG_FLEET: "another", fleet.TAG_COMPUTE: HERE, fleet.TAG_ROLE: "web"}
    )
    other_compute = await harness.foreign_node(
        {fleet.TAG_FLEET: FLEET, fleet.TAG_COMPUTE: "elsewhere", fleet.TAG_ROLE: "web"}
    )
    await fleet.apply(settings_for(web=3), HERE, provider)
    before = {
        n.tags[fleet.TAG_INDEX]: n.id
        for n in await provider.list_nodes(OURS)
        if n.tags[fleet.TAG_ROLE] == "web"
    }
    assert sorted(before) == ["0", "1", "2"]

    smaller = settings_for(web=1)
    planned = await fleet.plan(smaller, HERE, provider)
    assert [node.id for node in planned.destroy] == [before["2"], before["1"]]
    assert planned.create == ()
    assert all(planned.reasons[node.id] == "surplus" for node in planned.destroy)
    await fleet.apply(smaller, HERE, provider)

    assert slots(await provider.list_nodes(OURS)) == [
        ("scheduler", "0"),
        ("web", "0"),
        ("worker", "0"),
    ]
    assert (await provider.get_node(before["0"])).id == before["0"]
    for foreign in (untagged, other_fleet, other_compute):
        assert (await provider.get_node(foreign)).id == foreign
    assert (await fleet.plan(smaller, HERE, provider)).changes == 0

    destroyed = await fleet.destroy_all(smaller, HERE, provider)
    assert len(destroyed) == 3
    assert await provider.list_nodes(OURS) == []
    for foreign in (untagged, other_fleet, other_compute):
        assert (await provider.get_node(foreign)).id == foreign


async def test_a_second_node_in_a_slot_is_destroyed(
    harness: ComputeHarness, settings_for: Any
) -> None:
    settings = settings_for(web=1)
    provider = harness.provider
    await fleet.apply(settings, HERE, provider)
    (first,) = [n.id for n in await provider.list_nodes(OURS) if n.tags[fleet.TAG_ROLE] == "web"]
    twin = await harness.foreign_node({**OURS, fleet.TAG_ROLE: "web", fleet.TAG_INDEX: "0"})
    stray = await harness.foreign_node({**OURS, fleet.TAG_ROLE: "cache", fleet.TAG_INDEX: "0"})
    planned = await fleet.plan(settings, HERE, provider)
    assert planned.create == ()
    # Both web nodes run: either may stay (the lower id), the other goes.
    destroyed = {node.id for node in planned.destroy}
    assert destroyed in ({twin, stray}, {first, stray})
    assert planned.reasons[stray] == "no fleet slot: unknown role or index tag"
    await fleet.apply(settings, HERE, provider)
    assert slots(await provider.list_nodes(OURS)) == [
        ("scheduler", "0"),
        ("web", "0"),
        ("worker", "0"),
    ]


async def test_a_node_in_error_is_replaced(
    data_dir: Path, database_url: str, request: pytest.FixtureRequest
) -> None:
    """On the dummy driver, whose node states can be set (moto's instances never fail)."""
    harness = harness_for("dummy", request)
    try:
        settings = fleet_settings(data_dir, database_url, harness, web=1)
        provider = harness.provider
        await fleet.apply(settings, HERE, provider)
        web = next(n for n in await provider.list_nodes(OURS) if n.tags[fleet.TAG_ROLE] == "web")
        driver: Any = provider._driver()
        next(node for node in driver.nl if node.id == web.id).state = LibcloudState.ERROR

        planned = await fleet.plan(settings, HERE, provider)
        assert [spec.name for spec in planned.create] == ["testfleet-here-web-0"]
        assert [node.id for node in planned.destroy] == [web.id]
        assert planned.reasons[web.id] == "error: replaced"
        await fleet.apply(settings, HERE, provider)
        now = [n for n in await provider.list_nodes(OURS) if n.tags[fleet.TAG_ROLE] == "web"]
        assert len(now) == 1
        assert now[0].id != web.id
        assert now[0].state is NodeState.RUNNING
    finally:
        await harness.close()


async def test_a_configuration_without_roles_is_refused_not_emptied(
    harness: ComputeHarness, settings_for: Any, data_dir: Path, database_url: str
) -> None:
    provider = harness.provider
    await fleet.apply(settings_for(web=1), HERE, provider)
    roleless = make_settings(
        data_dir,
        database_url,
        compute={"providers": {HERE: {"provider": "libcloud", "options": harness.options}}},
        fleet={"name": FLEET},
    )
    with pytest.raises(fleet.FleetError, match="roles is empty"):
        await fleet.plan(roleless, HERE, provider)
    with pytest.raises(fleet.FleetError, match="roles is empty"):
        await fleet.apply(roleless, HERE, provider)
    assert slots(await provider.list_nodes(OURS)) == ONE_EACH


def test_unknown_compute_is_a_fleet_error(data_dir: Path, database_url: str) -> None:
    settings = make_settings(data_dir, database_url)
    with pytest.raises(fleet.FleetError, match="no compute configuration 'nowhere'"):
        fleet.open_compute(settings, "nowhere")


# -- health ---------------------------------------------------------------------------------


class HealthServer:
    """A real HTTP server answering `/healthz?ip=...`: 200 for the addresses marked healthy,
    503 for the others; it records what it was asked."""

    def __init__(self) -> None:
        self.healthy: set[str] = set()
        self.asked: list[str] = []
        self.base = ""

    async def health(self, request: Request) -> PlainTextResponse:
        ip = request.query_params.get("ip", "")
        self.asked.append(ip)
        return PlainTextResponse(
            "ok" if ip in self.healthy else "down", 200 if ip in self.healthy else 503
        )

    @property
    def url(self) -> str:
        return self.base + "/healthz?ip={ip}"


@pytest.fixture
async def health() -> AsyncIterator[HealthServer]:
    server = HealthServer()
    app = Starlette(routes=[Route("/healthz", server.health)])
    async with served_in_loop(app) as base:
        server.base = base
        yield server


async def test_wait_healthy(
    harness: ComputeHarness, settings_for: Any, health: HealthServer
) -> None:
    settings = settings_for(health_url=health.url)
    provider = harness.provider
    with pytest.raises(fleet.FleetNotHealthy, match="web 0: no node"):
        await fleet.wait_healthy(settings, HERE, provider, timeout=0.3, interval=0.1)

    await fleet.apply(settings, HERE, provider)
    nodes = await provider.list_nodes(OURS)
    web = {
        n.tags[fleet.TAG_INDEX]: n.public_ips[0] for n in nodes if n.tags[fleet.TAG_ROLE] == "web"
    }
    assert len(web) == 2
    health.healthy = {web["0"]}
    with pytest.raises(fleet.FleetNotHealthy, match=r"web 1: .*HTTP 503") as caught:
        await fleet.wait_healthy(settings, HERE, provider, timeout=0.5, interval=0.1)
    assert "web 0" not in str(caught.value)
    assert set(health.asked) == set(web.values())

    health.healthy = set(web.values())
    health.asked.clear()
    ready = await fleet.wait_healthy(settings, HERE, provider, timeout=5, interval=0.1)
    assert slots(ready) == ALL_SLOTS
    assert sorted(health.asked) == sorted(web.values())  # web nodes only, once each


async def test_wait_healthy_on_an_unreachable_endpoint_times_out(
    harness: ComputeHarness, settings_for: Any
) -> None:
    settings = settings_for(health_url="http://127.0.0.1:9/healthz?ip={ip}")
    await fleet.apply(settings, HERE, harness.provider)
    with pytest.raises(fleet.FleetNotHealthy, match="ConnectError"):
        await fleet.wait_healthy(settings, HERE, harness.provider, timeout=0.5, interval=0.1)


# -- records -------------------------------------------------------------------------------


@pytest.mark.usefixtures("app")
async def test_record_upserts_rows_and_marks_destroyed_nodes(
    harness: ComputeHarness, settings_for: Any
) -> None:
    provider = harness.provider
    await harness.foreign_node()
    await fleet.apply(settings_for(), HERE, provider)
    rows = await fleet.record(HERE, provider, FLEET)
    assert sorted((r.role, r.tags[fleet.TAG_INDEX]) for r in rows) == ALL_SLOTS
    stored = {row.external_id: row for row in await FleetNode.filter(compute=HERE)}
    assert len(stored) == 4
    nodes = {n.id: n for n in await provider.list_nodes(OURS)}
    for node_id, row in stored.items():
        node = nodes[node_id]
        assert (row.name, row.state, row.size, row.image) == (
            node.name,
            node.state.value,
            harness.size,
            harness.image,
        )
        assert row.public_ips == list(node.public_ips)
        assert row.tags == dict(node.tags)
        assert row.destroyed_at is None

    again = await fleet.record(HERE, provider, FLEET)
    assert sorted(r.id for r in again) == sorted(r.id for r in rows)
    assert await FleetNode.filter(compute=HERE).count() == 4

    await fleet.apply(settings_for(web=1), HERE, provider)
    current = await fleet.record(HERE, provider, FLEET)
    assert len(current) == 3
    gone = await FleetNode.get(compute=HERE, name="testfleet-here-web-1")
    assert gone.destroyed_at is not None
    assert gone.state == "terminated"
    assert sorted(r.name for r in await fleet.recorded(HERE)) == sorted(r.name for r in current)
    assert await FleetNode.filter(compute=HERE).count() == 4


# -- the command ---------------------------------------------------------------------------


def holdfast(
    env: dict[str, str], *args: str, answer: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOLDFAST, *args],
        env=env,
        input=answer,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_fleet_commands(tmp_path: Path) -> None:
    """`holdfast fleet plan/apply/status` on the dummy driver: each command is a process of
    its own (so the dummy's nodes live only in `apply`'s), and `status` reads the records."""
    config = tmp_path / "holdfast.toml"
    spec = 'size = "1"\nimage = "1"\nlocation = "2"\n'
    config.write_text(
        '[fleet]\nname = "clifleet"\n'
        '[compute.providers.box]\nprovider = "libcloud"\noptions = { driver = "dummy" }\n'
        'database_url = "postgres://holdfast@db.internal/holdfast"\n'
        f"[compute.providers.box.roles.web]\ncount = 1\n{spec}"
        f"[compute.providers.box.roles.scheduler]\ncount = 1\n{spec}"
        '[compute.providers.broken]\nprovider = "libcloud"\noptions = { driver = "dummy" }\n'
        'database_url = "postgres://holdfast@db.internal/holdfast"\n'
        f"[compute.providers.broken.roles.web]\ncount = 1\n{spec}"
        '[compute.providers.broken.roles.scheduler]\ncount = 1\nsize = "1"\nimage = "9"\n'
    )
    async with fresh_database(tmp_path, "fleetcli") as url:
        env = holdfast_env(
            tmp_path / "data",
            HOLDFAST_CONFIG_FILE=str(config),
            HOLDFAST_DATABASE_URL=url,
            HOLDFAST_NODE_ID="7",
        )
        assert holdfast(env, "migrate").returncode == 0

        # The nodes would share no signing key: refused before anything is created.
        keyless = holdfast(env, "fleet", "plan", "--compute", "box")
        assert keyless.returncode == 2
        assert "the nodes need one signing key" in keyless.stderr
        env["HOLDFAST_SECRET_KEY"] = "fleet-test-signing-key-0123456789abcdef"

        no_active = holdfast(env, "fleet", "plan")
        assert no_active.returncode == 2
        assert "compute.active is not set (configured: box, broken)" in no_active.stderr
        unknown = holdfast(env, "fleet", "status", "--compute", "nowhere")
        assert unknown.returncode == 2
        assert "no compute configuration 'nowhere'" in unknown.stderr

        planned = holdfast(env, "fleet", "plan", "--compute", "box")
        assert planned.returncode == 0, planned.stderr
        assert "2 to create" in planned.stdout
        assert "+ clifleet-box-web-0" in planned.stdout

        declined = holdfast(env, "fleet", "apply", "--compute", "box", answer="n\n")
        assert declined.returncode == 1
        empty = holdfast(env, "fleet", "status", "--compute", "box")
        assert "compute box: 0 nodes" in empty.stdout

        applied = holdfast(env, "fleet", "apply", "--compute", "box", "--yes")
        assert applied.returncode == 0, applied.stderr
        assert "created 2, destroyed 0" in applied.stdout
        assert "recorded 2 nodes" in applied.stdout

        status = holdfast(env, "fleet", "status", "--compute", "box")
        assert status.returncode == 0, status.stderr
        lines = status.stdout.splitlines()
        assert lines[0] == "compute box: 2 nodes"
        assert [line.split("\t")[:3] for line in lines[1:]] == [
            ["scheduler", "clifleet-box-scheduler-0", "running"],
            ["web", "clifleet-box-web-0", "running"],
        ]

        # The vendor fails part-way (the scheduler's image does not exist there): the web
        # node made before the failure is recorded all the same.
        failed = holdfast(env, "fleet", "apply", "--compute", "broken", "--yes")
        assert failed.returncode == 1
        assert "the compute provider failed: no image '9'" in failed.stderr
        status = holdfast(env, "fleet", "status", "--compute", "broken")
        assert [line.split("\t")[:2] for line in status.stdout.splitlines()[1:]] == [
            ["web", "clifleet-broken-web-0"]
        ]


# -- review fixes --------------------------------------------------------------------------


def test_node_names_are_valid_on_every_vendor() -> None:
    """GCE and DigitalOcean take lower-case letters, digits and `-`, 63 characters at most;
    the role and index stay whole, so a fleet's names stay distinct."""
    assert fleet.node_name("holdfast", "Eu_West", "web", 1) == "holdfast-eu-west-web-1"
    longest = fleet.node_name("f" * 32, "c" * 24, "scheduler", 99_999)
    assert len(longest) == 63
    assert longest.endswith("-scheduler-99999")
    assert fleet.node_name("f" * 32, "c-" + "c" * 22, "web", 0).endswith("c-web-0")
    names = {fleet.node_name("f" * 32, "c" * 24, "web", index) for index in range(3)}
    assert len(names) == 3
    cut = fleet.node_name("f" * 49, "x", "web", 10)  # the cut lands on a `-`: dropped
    assert "--" not in cut
    assert not cut.startswith("-")


def test_compute_names_and_health_url_are_checked(data_dir: Path, database_url: str) -> None:
    dummy = {"provider": "libcloud", "options": {"driver": "dummy"}}
    with pytest.raises(ValidationError, match="not allowed"):
        make_settings(data_dir, database_url, compute={"providers": {"eu_west": dummy}})
    with pytest.raises(ValidationError, match="not allowed"):
        make_settings(data_dir, database_url, compute={"providers": {"c" * 25: dummy}})
    for bad in ("https://example.org/healthz", "https://{ip}:{port}/healthz", "https://{ip"):
        with pytest.raises(ValidationError, match="health_url"):
            make_settings(data_dir, database_url, fleet={"health_url": bad})
    settings = make_settings(data_dir, database_url, fleet={"health_url": "http://{ip}:8000/h"})
    assert settings.fleet.health_url == "http://{ip}:8000/h"


async def test_a_stopped_node_is_replaced(
    data_dir: Path, database_url: str, request: pytest.FixtureRequest
) -> None:
    """Stopped through the vendor's own API (boto3 at moto's EC2): nothing of ours starts it
    again, so its slot gets a new node."""
    harness = harness_for("ec2", request)
    try:
        settings = fleet_settings(data_dir, database_url, harness, web=1)
        provider = harness.provider
        await fleet.apply(settings, HERE, provider)
        web = next(n for n in await provider.list_nodes(OURS) if n.tags[fleet.TAG_ROLE] == "web")
        harness.boto3().stop_instances(InstanceIds=[web.id])
        planned = await fleet.plan(settings, HERE, provider)
        assert [spec.name for spec in planned.create] == ["testfleet-here-web-0"]
        assert [node.id for node in planned.destroy] == [web.id]
        assert planned.reasons[web.id] == "stopped: replaced"
        assert "(stopped: replaced)" in planned.render()
        await fleet.apply(settings, HERE, provider)
        now = [n for n in await provider.list_nodes(OURS) if n.tags[fleet.TAG_ROLE] == "web"]
        assert [n.id for n in now] != [web.id]
        assert len(now) == 1
    finally:
        await harness.close()


async def test_health_takes_the_running_node_of_a_slot(
    data_dir: Path, database_url: str, request: pytest.FixtureRequest, health: HealthServer
) -> None:
    """A slot holding a running node and a broken one (listed after it) is healthy: the
    running node is the slot's."""
    harness = harness_for("dummy", request)
    try:
        settings = fleet_settings(data_dir, database_url, harness, web=1, health_url=health.url)
        provider = harness.provider
        await fleet.apply(settings, HERE, provider)
        twin = await harness.foreign_node({**OURS, fleet.TAG_ROLE: "web", fleet.TAG_INDEX: "0"})
        driver: Any = provider._driver()
        next(node for node in driver.nl if node.id == twin).state = LibcloudState.ERROR
        web = next(
            n
            for n in await provider.list_nodes(OURS)
            if n.tags[fleet.TAG_ROLE] == "web" and n.state is NodeState.RUNNING
        )
        health.healthy = {web.public_ips[0]}
        ready = await fleet.wait_healthy(settings, HERE, provider, timeout=2, interval=0.1)
        assert web.id in {node.id for node in ready}
    finally:
        await harness.close()


async def test_fleet_destroy_command(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """`holdfast fleet destroy` at moto's EC2, in a process of its own: our nodes go and are
    recorded destroyed; a foreign node, even one carrying our role tag, stays."""
    harness = harness_for("ec2", request)
    try:
        options = ", ".join(
            f"{key} = {json.dumps(value)}"
            for key, value in harness.options.items()
            if key != "extra"
        )
        config = tmp_path / "holdfast.toml"
        config.write_text(
            f'[fleet]\nname = "{FLEET}"\n[compute.providers.{HERE}]\nprovider = "libcloud"\n'
            f'options = {{ {options}, extra = {{ signature_version = "4" }} }}\n'
            'database_url = "postgres://holdfast@db.internal/holdfast"\n'
        )
        async with fresh_database(tmp_path, "fleetdestroy") as url:
            env = holdfast_env(
                tmp_path / "data",
                HOLDFAST_CONFIG_FILE=str(config),
                HOLDFAST_DATABASE_URL=url,
                HOLDFAST_NODE_ID="7",
                HOLDFAST_SECRET_KEY="fleet-test-signing-key-0123456789abcdef",
            )
            settings = fleet_settings(tmp_path, url, harness, web=1)
            await fleet.apply(settings, HERE, harness.provider)
            ours = {n.id for n in await harness.provider.list_nodes(OURS)}
            foreign = await harness.foreign_node({fleet.TAG_ROLE: "web"})

            def invoke(*args: str, answer: str = "") -> subprocess.CompletedProcess[str]:
                # A process of its own (as `holdfast` runs), with libcloud patched for moto.
                code = (
                    "import sys, libcloud.compute.drivers.ec2 as ec2; "
                    f"ec2.NAMESPACE = {MOTO_NAMESPACE!r}; "
                    "from app.cli import cli; sys.argv[0] = 'holdfast'; cli()"
                )
                return subprocess.run(
                    [sys.executable, "-c", code, *args],
                    env=env,
                    input=answer,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )

            assert (await anyio.to_thread.run_sync(invoke, "migrate")).returncode == 0
            recorded = await anyio.to_thread.run_sync(
                lambda: invoke("fleet", "status", "--compute", HERE, "--refresh")
            )
            assert f"compute {HERE}: 3 nodes" in recorded.stdout, recorded.stdout
            declined = await anyio.to_thread.run_sync(
                lambda: invoke("fleet", "destroy", "--compute", HERE, answer="n\n")
            )
            assert declined.returncode == 1
            assert "3 to destroy" in declined.stdout
            assert {n.id for n in await harness.provider.list_nodes(OURS)} == ours

            done = await anyio.to_thread.run_sync(
                lambda: invoke("fleet", "destroy", "--compute", HERE, "--yes")
            )
            assert done.returncode == 0, done.stderr
            assert "destroyed 3; 0 of our nodes still listed" in done.stdout
            assert await harness.provider.list_nodes(OURS) == []
            assert foreign in {n.id for n in await harness.provider.list_nodes()}
            status = await anyio.to_thread.run_sync(
                lambda: invoke("fleet", "status", "--compute", HERE)
            )
            assert f"compute {HERE}: 0 nodes" in status.stdout
            again = await anyio.to_thread.run_sync(
                lambda: invoke("fleet", "destroy", "--compute", HERE, "--yes")
            )
            assert "0 to destroy" in again.stdout
    finally:
        await harness.close()
