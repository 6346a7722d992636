"""`holdfast evacuate` (app/hosting/evacuate.py) end to end on real servers: the old fleet at
one moto EC2 server, the new at another (libcloud's EC2 driver), backups and the new media
storage in moto's S3, the old media on local disk, the domain at a real PowerDNS (checked with
`dig`), health answered by a real HTTP server, the old and new databases SQLite files (or
PostgreSQL databases in the PostgreSQL pass). Faults are real: a vendor's port closed part-way
through the step under test (tests/links.py), a health endpoint answering 503, a `holdfast
evacuate` process killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from tortoise import Tortoise, connections

from app import nodes
from app.db import migrate, tortoise_config
from app.hosting import backup as backups
from app.hosting import evacuate, fleet, runbook
from app.hosting.databases import PostgresTarget, engine_of, sqlite_path, table_checks
from app.hosting.evacuate import STEPS
from app.hosting.runbook import StepRecord, StepStatus, Stopped
from app.hosting.tables import TableCheck
from app.models import FleetNode, StoredObject
from app.seed import SeedOptions, seed
from app.settings import Settings
from app.storage import Storage
from providers.compute.base import Node
from providers.dns.base import Record, RecordType
from tests.compute import MOTO_NAMESPACE, UBUNTU_AMI, ec2_options
from tests.conftest import TEST_SECRET, create_database, fresh_database, need_service
from tests.links import HealthServer, Link
from tests.servers import MotoServer, PowerDNS, start_moto_server
from tests.support import HOLDFAST, holdfast_env

ZONE = "example.org"
RECORDS = ("@", "www")
CHANGED_BY_EVACUATION = {"fleet_nodes", "stored_objects", "storage_moves", "storage_leases"}
"""Tables the run writes to in the target (node ids are leased there too: `node_leases`)."""
OBJECTS = 4


@pytest.fixture(scope="module", autouse=True)
async def _session_database_back(settings: Settings) -> AsyncIterator[None]:
    """The evacuation opens and closes the ORM on the databases it works on, in this process:
    afterwards the session's database is the ORM's again, for the tests that follow."""
    yield
    await Tortoise.close_connections()
    await Tortoise.init(config=tortoise_config(settings))


@pytest.fixture(scope="module")
def moto_old() -> Iterator[MotoServer]:
    with start_moto_server() as server:
        yield server


@pytest.fixture(scope="module")
def moto_new() -> Iterator[MotoServer]:
    """The new vendor's EC2, and the S3 holding backups and the new media storage."""
    with start_moto_server() as server:
        yield server


@dataclass(frozen=True)
class Template:
    """The old database (migrated, seeded, media recorded) and its media files, built once
    per module and copied by each test (migrating and seeding is most of a world's cost)."""

    url: str
    media: Path
    objects: dict[str, bytes]


@pytest.fixture(scope="module")
async def template(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Template]:
    directory = tmp_path_factory.mktemp("old-template")
    async with fresh_database(directory, "tmpl") as url:
        settings = Settings(
            data_dir=str(directory / "data"),
            database_url=url,
            secret_key=TEST_SECRET,
            storage={
                "default": "media-a",
                "backends": {
                    "media-a": {"provider": "local", "options": {"root": str(directory / "a")}}
                },
            },
        )
        objects: dict[str, bytes] = {}
        await migrate(settings)
        await Tortoise.init(config=tortoise_config(settings))
        try:
            async with nodes.hold(settings, role="test"):
                await seed(settings, SeedOptions(users=12, posts=40, seed=3))
                storage = Storage(settings.storage)
                try:
                    for number in range(OBJECTS):
                        data = secrets.token_bytes(1000 + number * 777)
                        key = f"media/{number}.bin"

                        async def chunks(data: bytes = data) -> AsyncIterator[bytes]:
                            yield data

                        written = await storage.put(key, chunks(), content_type="image/webp")
                        await storage.record(connections.get("default"), written, owner_id=None)
                        objects[key] = data
                finally:
                    await storage.close()
        finally:
            await Tortoise.close_connections()
        yield Template(url, directory / "a", objects)


@asynccontextmanager
async def copied_database(template: str, directory: Path, name: str) -> AsyncIterator[str]:
    """A copy of the database at `template`: its SQLite file copied, or a PostgreSQL
    `CREATE DATABASE ... TEMPLATE` (dropped afterwards)."""
    if engine_of(template) == "sqlite":
        copy = directory / f"{name}.sqlite3"
        original = sqlite_path(template)
        shutil.copyfile(original, copy)
        for suffix in ("-wal", "-shm"):  # none once closed; copied should one be left
            if original.with_name(original.name + suffix).exists():
                shutil.copyfile(
                    original.with_name(original.name + suffix), copy.with_name(copy.name + suffix)
                )
        yield f"sqlite://{copy}"
        return
    admin_url = need_service("TEST_POSTGRES_URL")
    source = PostgresTarget.parse(template).database
    database = f"holdfast_{name}_{os.getpid()}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url)
    try:
        await create_database(admin, database, template=source)
        base, _, _ = admin_url.rpartition("/")
        yield f"{base}/{database}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(autouse=True)
def _moto_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("libcloud.compute.drivers.ec2.NAMESPACE", MOTO_NAMESPACE)


@dataclass
class World:
    """Everything one evacuation test runs against."""

    tmp: Path
    values: dict[str, Any]
    old_url: str
    new_url: str
    links: dict[str, Link]
    health: HealthServer
    powerdns: PowerDNS
    objects: dict[str, bytes] = field(default_factory=dict)
    old_nodes: list[Node] = field(default_factory=list)
    old_tables: dict[str, TableCheck] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return Settings(**self.values)

    @property
    def state_path(self) -> Path:
        return self.tmp / "data" / "evacuation-new.json"

    def evacuation(self, **flags: Any) -> evacuate.Evacuation:
        """The request, with the media move's retries at once (its faults are real)."""
        return evacuate.prepare(self.settings, to="new", move_retry_delays=(0.0,), **flags)

    def env(self, site: Path) -> dict[str, str]:
        """The settings as HOLDFAST_* variables for a `holdfast` process, with libcloud
        patched for moto (`site` holds that sitecustomize)."""
        extra = {
            f"HOLDFAST_{key.upper()}": value if isinstance(value, str) else json.dumps(value)
            for key, value in self.values.items()
            if key != "data_dir"
        }
        env = holdfast_env(self.tmp / "data", **extra)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
        return env


def _roles() -> dict[str, Any]:
    spec = {"size": "t2.micro", "image": UBUNTU_AMI}
    return {
        "web": {"count": 1, **spec},
        "worker": {"count": 1, **spec},
        "scheduler": {"count": 1, **spec},
    }


@pytest.fixture
async def world(
    tmp_path: Path,
    moto_old: MotoServer,
    moto_new: MotoServer,
    powerdns: PowerDNS,
    template: Template,
) -> AsyncIterator[World]:
    links = {
        "old_compute": Link(moto_old.port),
        "new_compute": Link(moto_new.port),
        "backups": Link(moto_new.port),
        "media": Link(moto_new.port),
        "dns": Link(powerdns.api_port),
    }
    health = HealthServer()
    tag = secrets.token_hex(4)

    def s3(link: str, bucket: str) -> dict[str, Any]:
        return {
            "provider": "s3",
            "options": {
                "bucket": f"{bucket}-{tag}",
                "endpoint_url": f"http://127.0.0.1:{links[link].port}",
                "addressing_style": "path",
                "access_key_id": "testing",
                "secret_access_key": "testing",
                "create_bucket": True,
            },
        }

    try:
        async with (
            copied_database(template.url, tmp_path, f"old{tag}") as old_url,
            fresh_database(tmp_path, f"new{tag}") as new_url,
        ):
            values: dict[str, Any] = {
                "data_dir": str(tmp_path / "data"),
                "database_url": old_url,
                "secret_key": TEST_SECRET,
                "storage": {
                    "default": "media-a",
                    "backends": {
                        "media-a": {"provider": "local", "options": {"root": str(tmp_path / "a")}},
                        "media-b": s3("media", "media"),
                        "backups": s3("backups", "backups"),
                    },
                    "move_lease_seconds": 2,
                },
                "backup": {"storage": "backups"},
                "compute": {
                    "active": "old",
                    "providers": {
                        "old": {
                            "provider": "libcloud",
                            "options": ec2_options(links["old_compute"].port),
                            "roles": _roles(),
                            "database_url": old_url,
                        },
                        "new": {
                            "provider": "libcloud",
                            "options": ec2_options(links["new_compute"].port),
                            "roles": _roles(),
                            "database_url": new_url,
                            "storage": "media-b",
                        },
                    },
                },
                "fleet": {
                    "name": f"hf{tag}",
                    "health_url": health.url,
                    "health_timeout_seconds": 3,
                    "drain_seconds": 0,
                },
                "dns": {
                    "providers": {
                        "pdns": {
                            "provider": "libcloud",
                            "options": {
                                "driver": "powerdns",
                                "key": powerdns.api_key,
                                "host": "127.0.0.1",
                                "port": links["dns"].port,
                                "secure": False,
                                "extra": {"api_version": "v1"},
                                "nameservers": ["ns1.example.org."],
                                "timeout": 5,
                            },
                        }
                    },
                    "active": "pdns",
                    "zone": ZONE,
                    "records": list(RECORDS),
                    "ttl": 60,
                },
            }
            built = World(tmp_path, values, old_url, new_url, links, health, powerdns)
            shutil.copytree(template.media, tmp_path / "a")
            built.objects = dict(template.objects)
            await _old_world(built)
            yield built
    finally:
        for link in links.values():
            link.close()
        health.close()
        await asyncio.to_thread(moto_old.reset)
        await asyncio.to_thread(moto_new.reset)
        await asyncio.to_thread(powerdns.delete_zone, ZONE)


async def _old_world(world: World) -> None:
    """The service as it runs at the old vendor: data and media (copied from the template),
    its fleet recorded, the domain pointing at its web node, and a scheduled backup."""
    settings = world.settings
    await Tortoise.init(config=tortoise_config(settings))
    try:
        async with nodes.hold(settings, role="test"):
            provider = fleet.open_compute(settings, "old")
            try:
                await fleet.apply(settings, "old", provider)
                world.old_nodes = await fleet.wait_healthy(settings, "old", provider, timeout=10)
                await fleet.record("old", provider, settings.fleet.name)
            finally:
                await provider.close()
    finally:
        await Tortoise.close_connections()
    from app.hosting.dns import open_dns

    assert settings.dns.active is not None
    dns = open_dns(settings, settings.dns.active)
    try:
        await dns.create_zone(ZONE)
        old_web = _web_ips(world.old_nodes)
        for name in RECORDS:
            await dns.set_record(ZONE, Record(name, RecordType.A, tuple(old_web), ttl=60))
    finally:
        await dns.close()
    storage_provider = backups.backup_storage(settings)
    try:
        await backups.create_backup(settings, storage_provider)
    finally:
        await storage_provider.close()
    world.old_tables = await _tables(world.old_url)


def _web_ips(nodes: list[Node]) -> list[str]:
    return sorted(n.public_ips[0] for n in nodes if n.tags.get("holdfast-role") == "web")


async def _tables(url: str) -> dict[str, TableCheck]:
    return await table_checks(url)


def _tagged(settings: Settings, compute: str) -> dict[str, str]:
    return {"holdfast-fleet": settings.fleet.name, "holdfast-compute": compute}


async def _nodes_at(settings: Settings, compute: str) -> list[Node]:
    provider = fleet.open_compute(settings, compute)
    try:
        return await provider.list_nodes(tags=_tagged(settings, compute))
    finally:
        await provider.close()


async def assert_consistent(
    world: World, *, old_reachable: bool = True, finished: bool = True, media_lost: bool = False
) -> None:
    """The state every evacuation must end in, however it was interrupted."""
    settings = world.settings
    new_nodes = await _nodes_at(settings, "new")
    assert sorted(n.tags["holdfast-role"] for n in new_nodes) == ["scheduler", "web", "worker"]
    web = _web_ips(new_nodes)
    assert web
    assert not set(web) & set(_web_ips(world.old_nodes))

    # The target holds the old database's data (the tables the run does not write to).
    new_tables = await _tables(world.new_url)
    for table, check in world.old_tables.items():
        if table not in CHANGED_BY_EVACUATION | {"node_leases"}:
            assert new_tables.get(table) == check, table

    target = settings.model_copy(update={"database_url": world.new_url})
    await Tortoise.init(config=tortoise_config(target))
    try:
        recorded = await FleetNode.filter(compute="new")
        assert {row.external_id for row in recorded} == {n.id for n in new_nodes}
        assert all(row.destroyed_at is None for row in recorded)
        old_rows = await FleetNode.filter(compute="old")
        assert {row.external_id for row in old_rows} == {n.id for n in world.old_nodes}
        if old_reachable:
            assert all(row.destroyed_at is not None for row in old_rows)
        else:
            assert all(row.destroyed_at is None for row in old_rows)
            assert {row.state for row in old_rows} == {"unknown"}
        objects = await StoredObject.all()
        assert sorted(o.key for o in objects) == sorted(world.objects)
        if media_lost:  # the old storage is gone: rows still name it, the keys are listed
            assert {o.backend for o in objects} == {"media-a"}
            lost = world.state_path.with_name(world.state_path.name + ".lost-media.txt")
            listed = sorted(line.split("\t")[0] for line in lost.read_text().splitlines())
            assert listed == sorted(world.objects)
            objects = []
        storage = Storage(settings.storage)
        try:
            for obj in objects:
                assert obj.backend == "media-b"
                data = b"".join([chunk async for chunk in storage.open(obj)])
                assert data == world.objects[obj.key]
                assert hashlib.sha256(data).hexdigest() == obj.sha256
        finally:
            await storage.close()
    finally:
        await Tortoise.close_connections()

    for name in RECORDS:
        host = ZONE if name == "@" else f"{name}.{ZONE}"
        assert await asyncio.to_thread(world.powerdns.dig, host) == web

    old_nodes = await _nodes_at(settings, "old") if old_reachable else None
    if old_nodes is not None:
        assert old_nodes == []

    state = runbook.load(world.state_path, STEPS)
    assert state is not None
    assert state.finished is finished


# --- faults, one per step -------------------------------------------------------------------


@contextmanager
def _fault(world: World, step: str) -> Iterator[Callable[[str, StepRecord], None]]:
    """An `on_step` hook starting the fault for `step` when that step starts; the fault
    ends with the block."""
    link = {
        "retire": "old_compute",
        "backup": "backups",
        "provision": "new_compute",
        "restore": "backups",
        "record": "new_compute",
        "media": "media",
        "dns": "dns",
    }.get(step)

    def start(name: str, record: StepRecord) -> None:
        if name != step or record.status is not StepStatus.RUNNING:
            return
        if link is not None:
            world.links[link].down()
        else:
            assert step == "wait_healthy"
            world.health.healthy = False

    try:
        yield start
    finally:
        for each in world.links.values():
            each.up()
        world.health.healthy = True


EXPECTED_MESSAGES = {
    "backup": "the old database answers but no backup could be taken",
    "provision": "the fleet at new could not be created: Unavailable",
    "wait_healthy": "HTTP 503",
    "restore": "Make the backup storage (backups) reachable and run again",
    "record": "the nodes at new could not be listed",
    "media": f"{OBJECTS} stored objects could not be copied to media-b",
    "dns": "the DNS records could not be switched: Unavailable",
    "retire": "the old fleet at old could not be destroyed: Unavailable",
}


async def test_a_fault_at_each_step_in_turn_resumes_there_and_ends_consistent(
    world: World,
) -> None:
    """A real fault at step k; the rerun resumes at k, which now succeeds, into a real fault
    at step k + 1; and so on through every step; the last rerun ends consistent."""
    previous: runbook.RunState | None = None
    for position, step in enumerate(STEPS):
        with _fault(world, step) as on_step, pytest.raises(Stopped) as stopped:
            await evacuate.run(world.evacuation(), on_step=on_step)
        assert stopped.value.step == step
        assert EXPECTED_MESSAGES[step] in stopped.value.message
        state = runbook.load(world.state_path, STEPS)
        assert state is not None
        for name in STEPS[:position]:
            assert state.steps[name].finished, name
        assert state.steps[step].status is StepStatus.FAILED
        assert state.steps[step].error
        for name in STEPS[position + 1 :]:
            assert state.steps[name].status is StepStatus.PENDING
        if previous is not None:
            assert state.run_id == previous.run_id
            for name in STEPS[: position - 1]:  # not run again
                assert state.steps[name].started_at == previous.steps[name].started_at
        previous = state
        if step == "wait_healthy":
            await _new_fleet_boots(world)
    # Until retire, the old fleet is whole.
    assert len(await _nodes_at(world.settings, "old")) == 3

    result = await evacuate.run(world.evacuation())
    assert not result.already_finished
    assert result.state.steps["retire"].status is StepStatus.DONE
    await assert_consistent(world)


async def _new_fleet_boots(world: World) -> None:
    """What the new fleet's nodes do once provisioned: migrate the target at boot, and the
    scheduler takes its lease there (the restore, done before, is not disturbed by it)."""
    from app.storage.lease import Lease

    target = world.settings.model_copy(update={"database_url": world.new_url})
    await migrate(target)
    await Tortoise.init(config=tortoise_config(target))
    try:
        await Lease("scheduler@new-node", 60, name="scheduler").acquire()
    finally:
        await Tortoise.close_connections()


def _site(tmp: Path) -> Path:
    """A sitecustomize for `holdfast` processes: libcloud's EC2 namespace as moto spells it."""
    site = tmp / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(
        f"import libcloud.compute.drivers.ec2 as ec2\nec2.NAMESPACE = {MOTO_NAMESPACE!r}\n"
    )
    return site


def _holdfast(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOLDFAST, *args],
        env=world.env(_site(world.tmp)),
        capture_output=True,
        text=True,
        timeout=300,
    )


async def test_a_run_stopped_by_a_failing_step_resumes_then_a_second_one_is_a_no_op(
    world: World,
) -> None:
    world.links["dns"].down()
    stopped = await asyncio.to_thread(_holdfast, world, "evacuate", "--to", "new")
    assert stopped.returncode == 1
    assert "stopped at step 7 of 8 (dns): the DNS records could not be switched" in stopped.stderr
    assert "Check dns.providers.pdns and run again" in stopped.stderr
    assert f"recorded in {world.state_path}" in stopped.stderr
    assert "`holdfast evacuate --to new` resumes at dns" in stopped.stderr
    for number, name in enumerate(STEPS[:6], 1):
        assert f"[{number}/{len(STEPS)}] {name}: done" in stopped.stdout
    assert world.powerdns.api_key not in stopped.stdout + stopped.stderr
    assert "testing" not in stopped.stdout + stopped.stderr  # no credential printed
    recorded = runbook.load(world.state_path, STEPS)
    assert recorded is not None

    planned = await asyncio.to_thread(_holdfast, world, "evacuate", "--to", "new", "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert f"(resuming run {recorded.run_id})" in planned.stdout
    assert "1. backup [done]: nothing: done (backup " in planned.stdout
    assert "7. dns [failed]: " in planned.stdout
    assert runbook.load(world.state_path, STEPS) == recorded  # the plan wrote nothing

    # The run is bound to its target: other settings are refused, naming what changed.
    fleet_settings = world.values["fleet"]
    world.values["fleet"] = {**fleet_settings, "name": "elsewhere"}
    refused = await asyncio.to_thread(_holdfast, world, "evacuate", "--to", "new")
    world.values["fleet"] = fleet_settings
    assert refused.returncode == 2
    assert f"fleet.name was '{fleet_settings['name']}', now 'elsewhere'" in refused.stderr
    assert runbook.load(world.state_path, STEPS) == recorded

    world.links["dns"].up()
    done = await asyncio.to_thread(_holdfast, world, "evacuate", "--to", "new")
    assert done.returncode == 0, done.stderr
    assert "[6/8]" not in done.stdout
    assert "[7/8] dns: done" in done.stdout
    assert "[8/8] retire: done" in done.stdout
    assert "evacuated from old to new" in done.stdout
    assert "HOLDFAST_COMPUTE__ACTIVE=new" in done.stdout
    assert "HOLDFAST_STORAGE__DEFAULT=media-b" in done.stdout
    await assert_consistent(world)
    finished = world.state_path.read_text()

    again = await asyncio.to_thread(_holdfast, world, "evacuate", "--to", "new")
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout
    assert world.state_path.read_text() == finished

    # A new run over a finished one never overwrites the data the first one restored.
    restarted = await asyncio.to_thread(_holdfast, world, "evacuate", "--to", "new", "--restart")
    assert restarted.returncode == 1
    assert "(restore)" in restarted.stderr
    assert "is not empty" in restarted.stderr
    state = runbook.load(world.state_path, STEPS)
    assert state is not None
    assert state.run_id != json.loads(finished)["run_id"]
    await assert_consistent(world, finished=False)


DRAIN = 3.0


async def test_a_killed_run_resumes_at_the_step_it_was_in(world: World) -> None:
    """SIGKILL of a real `holdfast evacuate` process inside restore, then (resumed) inside
    media, then inside retire's drain; each rerun resumes at the step killed, and the last
    ends consistent without draining again."""
    world.values["fleet"] = {**world.values["fleet"], "drain_seconds": DRAIN}
    previous: runbook.RunState | None = None
    resumed_at = STEPS[0]
    for step, delay in (("restore", 0.05), ("media", 0.1), ("retire", 0.5)):
        process = subprocess.Popen(  # noqa: ASYNC220 (started once; polled without blocking)
            [HOLDFAST, "evacuate", "--to", "new"],
            env=world.env(_site(world.tmp)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                state = runbook.load(world.state_path, STEPS) if world.state_path.exists() else None
                if state is not None and state.steps[step].status is StepStatus.RUNNING:
                    break
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            await asyncio.sleep(delay)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate()
        assert process.returncode == -signal.SIGKILL
        killed = runbook.load(world.state_path, STEPS)
        assert killed is not None
        assert killed.next_step() == step
        assert killed.steps[step].status is StepStatus.RUNNING
        if previous is not None:  # resumed at the step killed before: earlier ones not rerun
            assert killed.run_id == previous.run_id
            for name in STEPS[: STEPS.index(resumed_at)]:
                assert killed.steps[name].started_at == previous.steps[name].started_at, name
        previous, resumed_at = killed, step
        if step == "media":
            # The killed move's storage lease outlives it by move_lease_seconds.
            await asyncio.sleep(world.settings.storage.move_lease_seconds + 0.3)

    assert len(await _nodes_at(world.settings, "old")) == 3  # killed while draining
    switched = killed.steps["dns"].finished_time()
    assert switched is not None
    await asyncio.sleep(max(0.0, switched.timestamp() + DRAIN - time.time()))
    resumed = await asyncio.to_thread(_holdfast, world, "evacuate", "--to", "new")
    assert resumed.returncode == 0, resumed.stderr
    assert "[8/8] retire ..." in resumed.stdout
    assert "[7/8]" not in resumed.stdout  # steps done are not run again
    assert "[8/8] retire: done" in resumed.stdout
    state = runbook.load(world.state_path, STEPS)
    assert state is not None
    assert state.run_id == killed.run_id
    retire = state.steps["retire"]
    assert retire.started_at is not None
    assert retire.finished_at is not None
    took = datetime.fromisoformat(retire.finished_at) - datetime.fromisoformat(retire.started_at)
    assert took.total_seconds() < DRAIN - 1  # no second drain
    await assert_consistent(world)


async def test_the_old_vendor_gone_from_the_start(world: World) -> None:
    """Its compute API, its database and its media all gone: without --old-gone the run
    stops at the backup, naming the latest backup; with it, it completes from that backup,
    listing the media it could not copy."""
    world.links["old_compute"].down()  # its API refuses connections
    await _gone(world.old_url)
    for path in (world.tmp / "a").rglob("*"):
        if path.is_file():
            path.unlink()
    scheduled = (await _backup_ids(world.settings))[0]

    with pytest.raises(Stopped) as stopped:
        await evacuate.run(world.evacuation())
    assert stopped.value.step == "backup"
    assert "the old database does not answer" in stopped.value.message
    assert "rerun with --old-gone to restore the latest backup " + scheduled in (
        stopped.value.message
    )
    assert " ago)" in stopped.value.message

    # The new fleet's own backup (no content rows), taken before a new run starts, is
    # refused; --backup ID chooses the right one.
    async with fresh_database(world.tmp, "empty") as empty_url:
        await migrate(world.settings.model_copy(update={"database_url": empty_url}))
        storage = backups.backup_storage(world.settings)
        try:
            empty = await backups.create_backup(world.settings, storage, database_url=empty_url)
        finally:
            await storage.close()
    with pytest.raises(Stopped) as refused:
        await evacuate.run(world.evacuation(old_gone=True), restart=True)
    assert refused.value.step == "backup"
    assert f"the newest backup, {empty.id}" in refused.value.message
    assert "holds no account" in refused.value.message

    # Stopped after the restore (the target's vendor fails): the dry run opens nothing of
    # the old database (a SQLite file would be created by opening it).
    with _fault(world, "provision") as on_step, pytest.raises(Stopped):
        await evacuate.run(world.evacuation(old_gone=True, backup_id=scheduled), on_step=on_step)
    world.links["old_compute"].down()  # the fault's end brought every link up
    planned = {step.name: step for step in (await evacuate.dry_run(world.evacuation()))[1]}
    assert "known once restored" in planned["media"].would
    assert "marked unknown (--old-gone)" in planned["retire"].would
    await _assert_still_gone(world.old_url)

    result = await evacuate.run(world.evacuation())  # the flags are recorded in the state
    state = result.state
    assert state.options["old_gone"] is True
    assert state.steps["backup"].status is StepStatus.SKIPPED
    assert state.steps["restore"].data["backup_id"] == scheduled
    media = state.steps["media"]
    assert media.status is StepStatus.DONE
    assert f"{OBJECTS} stored objects could not be copied" in media.warnings[0]
    assert "lost unless the old storage comes back" in media.warnings[0]
    retire = state.steps["retire"]
    assert retire.status is StepStatus.DONE
    assert len(retire.warnings) == 1
    for node in world.old_nodes:
        assert node.name in retire.warnings[0]
    await _assert_still_gone(world.old_url)
    await assert_consistent(world, old_reachable=False, media_lost=True)


async def test_without_dns_retire_waits_for_the_operator(world: World) -> None:
    """No DNS configured: the old fleet, still serving the domain, is destroyed only once
    the operator says the domain points at the new one; no storage target: media stay."""
    before = await asyncio.to_thread(world.powerdns.dig, f"www.{ZONE}")
    world.values["dns"] = {}
    compute = world.values["compute"]
    new = {key: value for key, value in compute["providers"]["new"].items() if key != "storage"}
    world.values["compute"] = {**compute, "providers": {**compute["providers"], "new": new}}
    evacuation = world.evacuation()
    with pytest.raises(Stopped) as stopped:
        await evacuate.run(evacuation)
    assert stopped.value.step == "retire"
    web = _web_ips(await _nodes_at(world.settings, "new"))
    assert f"point the domain at {', '.join(web)}, then rerun with --dns-switched" in (
        stopped.value.message
    )
    assert len(await _nodes_at(world.settings, "old")) == 3
    result = await evacuate.run(world.evacuation(dns_switched=True))
    steps = result.state.steps
    assert result.state.finished
    assert steps["media"].status is StepStatus.SKIPPED
    assert steps["media"].detail == (
        "compute.providers.new.storage is not set: media stay where they are (media-a)"
    )
    assert steps["dns"].status is StepStatus.SKIPPED
    assert "no DNS configured" in (steps["dns"].detail or "")
    assert await asyncio.to_thread(world.powerdns.dig, f"www.{ZONE}") == before
    assert await _nodes_at(world.settings, "old") == []
    assert not any("STORAGE__DEFAULT" in line for line in evacuate.next_steps(evacuation))
    target = world.settings.model_copy(update={"database_url": world.new_url})
    await Tortoise.init(config=tortoise_config(target))
    try:
        assert {o.backend for o in await StoredObject.all()} == {"media-a"}
        old_rows = await FleetNode.filter(compute="old")
        assert old_rows
        assert all(row.destroyed_at is not None for row in old_rows)
    finally:
        await Tortoise.close_connections()


async def _gone(url: str) -> None:
    if engine_of(url) == "sqlite":
        sqlite_path(url).unlink()
    else:
        await _drop(url)


async def _assert_still_gone(url: str) -> None:
    """Nothing recreated the old database."""
    if engine_of(url) == "sqlite":
        assert not sqlite_path(url).exists()
        return
    target = PostgresTarget.parse(url)
    admin = await asyncpg.connect(
        host=target.host, port=target.port, user=target.user, database="postgres"
    )
    try:
        found = await admin.fetchval(
            "SELECT count(*) FROM pg_database WHERE datname = $1", target.database
        )
    finally:
        await admin.close()
    assert found == 0


async def _drop(url: str) -> None:
    target = PostgresTarget.parse(url)
    admin = await asyncpg.connect(
        host=target.host, port=target.port, user=target.user, database="postgres"
    )
    try:
        await admin.execute(f'DROP DATABASE "{target.database}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_dry_run_prints_the_plan_and_changes_nothing(world: World) -> None:
    before_backups = await _backup_ids(world.settings)
    before_dns = await asyncio.to_thread(world.powerdns.dig, f"www.{ZONE}")
    shown = await asyncio.to_thread(_holdfast, world, "evacuate", "--to", "new", "--dry-run")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "dry run: evacuate old -> new (a new run)" in out
    assert "1. backup [pending]: take a fresh backup" in out
    assert "2. restore [pending]: restore the backup taken by the first step" in out
    assert "3. provision [pending]: at new: create " in out
    assert f"move {OBJECTS} stored objects" in out
    for host in (ZONE, f"www.{ZONE}"):
        assert f"{host} A: {', '.join(before_dns)} -> the new web nodes' addresses" in out
    for node in world.old_nodes:
        assert node.name in out  # the nodes retire would destroy
    assert "nothing was changed" in out

    assert not world.state_path.exists()
    assert await _nodes_at(world.settings, "new") == []
    assert await _backup_ids(world.settings) == before_backups
    assert await asyncio.to_thread(world.powerdns.dig, f"www.{ZONE}") == before_dns
    assert len(await _nodes_at(world.settings, "old")) == 3
    if engine_of(world.new_url) == "sqlite":
        assert not sqlite_path(world.new_url).exists()
    assert await _tables(world.old_url) == world.old_tables


async def _backup_ids(settings: Settings) -> list[str]:
    storage = backups.backup_storage(settings)
    try:
        return [info.id for info in await backups.list_backups(settings, storage)]
    finally:
        await storage.close()


def test_a_bad_request_exits_2_and_changes_nothing(tmp_path: Path) -> None:
    roles = json.dumps(_roles())
    env = holdfast_env(
        tmp_path / "data",
        HOLDFAST_COMPUTE__ACTIVE="old",
        HOLDFAST_COMPUTE__PROVIDERS__OLD__PROVIDER="libcloud",
        HOLDFAST_COMPUTE__PROVIDERS__OLD__OPTIONS='{"driver": "dummy"}',
        HOLDFAST_COMPUTE__PROVIDERS__OLD__ROLES=roles,
        HOLDFAST_COMPUTE__PROVIDERS__NEW__PROVIDER="libcloud",
        HOLDFAST_COMPUTE__PROVIDERS__NEW__OPTIONS='{"driver": "dummy"}',
        HOLDFAST_COMPUTE__PROVIDERS__NEW__ROLES=roles,
    )
    for arguments, message in [
        (["--to", "new"], "compute.providers.new.database_url is not set"),
        (["--to", "old"], "--to old is the configuration being left"),
        (["--to", "nowhere"], "no compute configuration 'nowhere' (configured: new, old)"),
    ]:
        refused = subprocess.run(
            [HOLDFAST, "evacuate", *arguments], env=env, capture_output=True, text=True, timeout=60
        )
        assert refused.returncode == 2, refused.stderr
        assert message in refused.stderr
    assert not (tmp_path / "data").exists()
