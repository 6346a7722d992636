"""The fleet: the machines the service runs on at one compute configuration
(`compute.providers.<name>`), converged to the roles and counts its settings desire.

Every node we make carries four tags: `holdfast-fleet` (this deployment, `fleet.name`),
`holdfast-compute` (the configuration's name), `holdfast-role` and `holdfast-index` (its slot:
`web` 0, `web` 1, ...). The fleet is only ever the nodes carrying the first two: a node
without them (made by hand, by another deployment, by another configuration at the same
vendor) is never listed, changed or destroyed, whatever its name says.

`plan` and `apply` need no database, so that an evacuation can provision the new fleet before
its database exists; `record` then writes what the vendor reports into `fleet_nodes`, the
truth a vanished vendor is rebuilt from.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx

from app.hosting.userdata import UserDataError, render_user_data
from app.models import FleetNode
from app.settings import ROLES, ComputeProviderSettings, Role, Settings
from providers import registry
from providers.compute.base import ComputeProvider, Node, NodeSpec, NodeState
from providers.errors import ConfigurationError, Unavailable

TAG_FLEET = "holdfast-fleet"
TAG_COMPUTE = "holdfast-compute"
TAG_ROLE = "holdfast-role"
TAG_INDEX = "holdfast-index"

_REPLACED = (NodeState.ERROR, NodeState.TERMINATED, NodeState.STOPPED)
"""States a slot's node is replaced from: it will not serve again (a stopped node is not
serving, and nothing of ours starts it again: kept, it would hold its slot forever)."""

_NAME_LENGTH = 63
"""The longest node name GCE and DigitalOcean take (an RFC 1035 label)."""

_MAX_INDEX = 100_000


class FleetError(Exception):
    """The fleet cannot be planned or changed as asked (an unknown configuration, ...)."""


class FleetNotHealthy(FleetError):
    """The fleet did not become healthy in time; the message says which nodes were not."""


@dataclass(frozen=True)
class FleetPlan:
    """What `apply` does at one compute configuration: nodes to create; ours to destroy
    (surplus, broken, duplicated or slotless nodes, the highest slot index first), each
    with its reason; and ours kept as they are."""

    compute: str
    create: tuple[NodeSpec, ...]
    destroy: tuple[Node, ...]
    keep: tuple[Node, ...]
    reasons: Mapping[str, str] = field(default_factory=dict)
    """Why each node of `destroy` goes, by node id."""

    @property
    def changes(self) -> int:
        return len(self.create) + len(self.destroy)

    def render(self) -> str:
        """The plan for an operator: one line per node, `+` created, `-` destroyed, `=` kept."""
        lines = [
            f"compute {self.compute}: {len(self.create)} to create, {len(self.destroy)} to "
            f"destroy, {len(self.keep)} unchanged"
        ]
        for spec in self.create:
            where = f", in {spec.location}" if spec.location else ""
            lines.append(f"  + {spec.name}  size {spec.size}, image {spec.image}{where}")
        for node in self.destroy:
            reason = self.reasons.get(node.id, "")
            lines.append(f"  - {node.name}  {node.id} {node.state.value}  ({reason})")
        for node in self.keep:
            address = f" {node.public_ips[0]}" if node.public_ips else ""
            lines.append(f"  = {node.name}  {node.id} {node.state.value}{address}")
        return "\n".join(lines)


def compute_settings(settings: Settings, compute: str) -> ComputeProviderSettings:
    """The configuration `compute`; FleetError naming the configured ones otherwise."""
    config = settings.compute.providers.get(compute)
    if config is None:
        known = ", ".join(sorted(settings.compute.providers)) or "none"
        raise FleetError(f"no compute configuration {compute!r} (configured: {known})")
    return config


def open_compute(settings: Settings, name: str) -> ComputeProvider:
    """The provider of compute configuration `name` (close it when done)."""
    config = compute_settings(settings, name)
    try:
        provider: ComputeProvider = registry.load(
            "compute", config.provider, config.options, where=f"compute.providers.{name}.options"
        )
    except ConfigurationError as exc:
        raise FleetError(f"compute.providers.{name}: {exc}") from exc
    return provider


def fleet_tags(fleet_name: str, compute: str) -> dict[str, str]:
    """The tags every node of this deployment's fleet at `compute` carries."""
    return {TAG_FLEET: fleet_name, TAG_COMPUTE: compute}


def node_name(fleet_name: str, compute: str, role: Role, index: int) -> str:
    """`{fleet}-{compute}-{role}-{index}` as every vendor takes it: lower case, `-` for `_`
    (GCE and DigitalOcean refuse underscores), at most 63 characters. Only the
    `{fleet}-{compute}` part is shortened, so the role and index, which tell a fleet's nodes
    apart, are always whole. Names are for people: ownership is decided by tags."""
    suffix = f"-{role}-{index}"
    prefix = f"{fleet_name}-{compute}".lower().replace("_", "-")
    prefix = prefix[: _NAME_LENGTH - len(suffix)].rstrip("-")
    return prefix + suffix


async def plan(settings: Settings, compute: str, provider: ComputeProvider) -> FleetPlan:
    """Compare our nodes at `compute` to the roles desired there (no database needed).

    Each role has slots 0..count-1. A slot without a live node gets one created; a slot's
    node in ERROR (or TERMINATED) is destroyed and replaced; a second live node in one slot
    is destroyed (the RUNNING one stays); nodes in slots past the count, of a role no longer
    desired, or with role or index tags we do not understand are surplus and destroyed.
    A node's size or image changed in the settings applies to nodes created from then on."""
    config = compute_settings(settings, compute)
    name = settings.fleet.name
    if not config.roles:
        # Converging to no roles would destroy the whole fleet: that takes `destroy_all`,
        # never a configuration whose roles were left out or lost.
        raise FleetError(
            f"compute.providers.{compute}.roles is empty: no fleet to plan (to remove the "
            f"fleet: holdfast fleet destroy --compute {compute})"
        )
    ours = await provider.list_nodes(fleet_tags(name, compute))
    slots: dict[tuple[str, int], list[Node]] = {}
    destroy: list[tuple[tuple[int, str], Node]] = []
    reasons: dict[str, str] = {}
    for node in ours:
        role, index = node.tags.get(TAG_ROLE), _index(node)
        if role not in ROLES or index is None:
            destroy.append(((_MAX_INDEX, node.id), node))
            reasons[node.id] = "no fleet slot: unknown role or index tag"
            continue
        slots.setdefault((role, index), []).append(node)

    create: list[NodeSpec] = []
    keep: list[Node] = []
    for role in ROLES:
        spec = config.roles.get(role)
        count = 0 if spec is None else spec.count
        for index in range(count):
            assert spec is not None
            nodes = slots.pop((role, index), [])
            live = sorted(
                (node for node in nodes if node.state not in _REPLACED),
                key=lambda node: (node.state is not NodeState.RUNNING, node.id),
            )
            for node in nodes:
                if node.state in _REPLACED:
                    destroy.append(((index, role), node))
                    reasons[node.id] = f"{node.state.value}: replaced"
            for node in live[1:]:
                destroy.append(((index, role), node))
                reasons[node.id] = f"a second node in slot {role} {index}"
            if live:
                keep.append(live[0])
                continue
            tags = {**fleet_tags(name, compute), TAG_ROLE: role, TAG_INDEX: str(index)}
            try:
                user_data = render_user_data(settings, compute, role)
            except UserDataError as exc:
                raise FleetError(str(exc)) from exc
            create.append(
                NodeSpec(
                    name=node_name(name, compute, role, index),
                    size=spec.size,
                    image=spec.image,
                    location=spec.location,
                    user_data=user_data,
                    tags=tags,
                )
            )
    for (role, index), nodes in slots.items():
        for node in nodes:
            destroy.append(((index, role), node))
            reasons[node.id] = "surplus"
    destroy.sort(key=lambda item: (-item[0][0], item[0][1]))
    return FleetPlan(
        compute=compute,
        create=tuple(create),
        destroy=tuple(node for _, node in destroy),
        keep=tuple(keep),
        reasons=reasons,
    )


async def apply(
    settings: Settings,
    compute: str,
    provider: ComputeProvider,
    *,
    planned: FleetPlan | None = None,
) -> FleetPlan:
    """Converge the fleet at `compute` to its settings and return what was done (no
    database needed): `planned` when given (the plan an operator approved), else a plan
    made now. Nodes are created before any is destroyed, so a replaced node's successor
    exists first. Idempotent: a second run plans no change, and a run stopped part-way (or
    failing on a vendor error, which propagates) is finished by the next one, as every node
    is tagged with its slot when it is created."""
    if planned is not None and planned.compute != compute:
        raise FleetError(f"the plan is for compute {planned.compute}, not {compute}")
    done = planned or await plan(settings, compute, provider)
    for spec in done.create:
        await provider.create_node(spec)
    for node in done.destroy:
        await provider.destroy_node(node.id)
    return done


async def destroy_all(settings: Settings, compute: str, provider: ComputeProvider) -> list[str]:
    """Destroy every node of this deployment's fleet at `compute` (ours by tags, nothing
    else); the ids destroyed."""
    nodes = await provider.list_nodes(fleet_tags(settings.fleet.name, compute))
    for node in nodes:
        await provider.destroy_node(node.id)
    return [node.id for node in nodes]


async def record(compute: str, provider: ComputeProvider, fleet_name: str) -> list[FleetNode]:
    """Write our nodes at `compute`, as the vendor reports them now, into `fleet_nodes`
    (needs the database open): a row per node, updated in place; rows of nodes the vendor
    no longer lists are kept, marked destroyed. Returns the rows of the nodes listed."""
    from tortoise.transactions import in_transaction

    nodes = await provider.list_nodes(fleet_tags(fleet_name, compute))
    now = datetime.now(UTC)
    rows: list[FleetNode] = []
    async with in_transaction():
        for node in nodes:
            values: dict[str, Any] = {
                "name": node.name[:200],
                "role": node.tags.get(TAG_ROLE, "")[:16],
                "state": node.state.value,
                "size": _short(node.size),
                "image": _short(node.image),
                "location": _short(node.location),
                "public_ips": list(node.public_ips),
                "private_ips": list(node.private_ips),
                "tags": dict(node.tags),
                "seen_at": now,
                "destroyed_at": None,
            }
            row = await FleetNode.get_or_none(compute=compute, external_id=node.id)
            if row is None:
                row = await FleetNode.create(compute=compute, external_id=node.id, **values)
            else:
                await row.update_from_dict(values).save()
            rows.append(row)
        listed = {node.id for node in nodes}
        for row in await FleetNode.filter(compute=compute, destroyed_at=None):
            if row.external_id not in listed and row.tags.get(TAG_FLEET) == fleet_name:
                row.state = NodeState.TERMINATED.value
                row.destroyed_at = now
                await row.save(update_fields=["state", "destroyed_at"])
    return rows


async def recorded(compute: str) -> list[FleetNode]:
    """The recorded nodes at `compute` not known destroyed, by role and name."""
    return await FleetNode.filter(compute=compute, destroyed_at=None).order_by("role", "name")


async def wait_healthy(
    settings: Settings,
    compute: str,
    provider: ComputeProvider,
    *,
    timeout: float,  # noqa: ASYNC109 (the agreed interface; it also bounds each request)
    interval: float = 5.0,
) -> list[Node]:
    """Wait until every desired slot at `compute` has a RUNNING node with a public address
    and every web node answers `fleet.health_url` (its `{ip}` filled in) with a 2xx; those
    nodes. FleetNotHealthy naming what was still missing once `timeout` seconds passed.

    The vendor being unreachable for a while is waited through like a node still booting.
    The health check does not verify TLS: a new fleet is checked by address before the
    domain points at it, so no certificate can name what is asked for yet; it sends nothing
    secret, and its answer only decides readiness."""
    config = compute_settings(settings, compute)
    deadline = time.monotonic() + timeout
    headers = {"Host": settings.fleet.domain} if settings.fleet.domain else {}
    async with httpx.AsyncClient(verify=False, follow_redirects=False, headers=headers) as client:  # noqa: S501
        while True:
            problems, ready = await _check(settings, compute, provider, config, client, deadline)
            if not problems:
                return ready
            left = deadline - time.monotonic()
            if left <= 0:
                raise FleetNotHealthy(
                    f"compute {compute}: not healthy after {timeout:g}s: " + "; ".join(problems)
                )
            await anyio.sleep(min(interval, left))


async def _check(
    settings: Settings,
    compute: str,
    provider: ComputeProvider,
    config: ComputeProviderSettings,
    client: httpx.AsyncClient,
    deadline: float,
) -> tuple[list[str], list[Node]]:
    """What keeps the fleet from being healthy now (nothing: healthy), and its nodes."""
    try:
        nodes = await provider.list_nodes(fleet_tags(settings.fleet.name, compute))
    except Unavailable as exc:
        return [f"the vendor is unreachable ({exc})"], []
    by_slot: dict[tuple[str | None, int | None], Node] = {}
    for listed in nodes:
        # Two nodes in a slot (a replacement made, the broken one not yet gone): the
        # running one is the slot's.
        key = (listed.tags.get(TAG_ROLE), _index(listed))
        held = by_slot.get(key)
        if held is None or (
            held.state is not NodeState.RUNNING and listed.state is NodeState.RUNNING
        ):
            by_slot[key] = listed
    problems: list[str] = []
    ready: list[Node] = []
    for role in ROLES:
        spec = config.roles.get(role)
        for index in range(0 if spec is None else spec.count):
            node = by_slot.get((role, index))
            slot = f"{role} {index}"
            if node is None:
                problems.append(f"{slot}: no node")
            elif node.state is not NodeState.RUNNING:
                problems.append(f"{slot}: {node.state.value}")
            elif not node.public_ips:
                problems.append(f"{slot}: no public address yet")
            else:
                ready.append(node)
    if problems:
        return problems, ready
    for node in ready:
        if node.tags.get(TAG_ROLE) == "web":
            problem = await _health(settings, client, node, deadline)
            if problem is not None:
                problems.append(f"web {node.tags.get(TAG_INDEX)}: {problem}")
    return problems, ready


async def _health(
    settings: Settings, client: httpx.AsyncClient, node: Node, deadline: float
) -> str | None:
    address = node.public_ips[0]
    url = settings.fleet.health_url.format(ip=f"[{address}]" if ":" in address else address)
    try:
        response = await client.get(url, timeout=max(0.1, min(10.0, deadline - time.monotonic())))
    except httpx.HTTPError as exc:
        return f"{url}: {type(exc).__name__}"
    if not response.is_success:
        return f"{url}: HTTP {response.status_code}"
    return None


def _index(node: Node) -> int | None:
    value = node.tags.get(TAG_INDEX, "")
    if not (value.isascii() and value.isdecimal()) or len(value) > 5:
        return None
    return int(value)


def _short(value: str | None) -> str | None:
    return None if value is None else value[:200]
