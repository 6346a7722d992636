"""The compute provider interface: machines ("nodes") at a hosting vendor.

Every implementation passes the one contract suite in `tests/contract/test_compute_contract.py`
against a real local server (moto's EC2, libcloud's dummy driver), so the operator can switch
vendors by configuration.

Rules every implementation keeps:
- Ownership is by tags: `create_node` puts `tags` on the node (a vendor without tags keeps
  them in its metadata or labels), and `list_nodes(tags=...)` returns only nodes carrying
  every one of them. Callers never touch a node without our tags.
- States are mapped to `NodeState`; vendor detail goes in `extra`, for logs only.
- Only `providers.errors` cross this interface: `NotFound` for a node, size, image or
  location that does not exist; `Unavailable` for a transient failure (the vendor is down,
  throttles, or cannot be reached: a terminated account is `Unavailable` or `ProviderError`,
  never a vendor exception); `ConfigurationError` for credentials the vendor refuses;
  `ProviderError` otherwise.
- Methods are coroutines; a synchronous SDK runs in a worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class NodeState(StrEnum):
    """A node's state, whatever the vendor calls it."""

    PENDING = "pending"  # being created or started
    RUNNING = "running"
    REBOOTING = "rebooting"
    STOPPING = "stopping"
    STOPPED = "stopped"
    TERMINATED = "terminated"  # destroyed (some vendors list them for a while)
    ERROR = "error"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class NodeSize:
    """A machine size (instance type, plan)."""

    id: str
    name: str
    ram_mb: int | None = None
    disk_gb: int | None = None
    cpus: float | None = None
    price_per_hour: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NodeImage:
    """An operating system image."""

    id: str
    name: str
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NodeLocation:
    """A region or zone nodes can be created in."""

    id: str
    name: str
    country: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """What `create_node` makes: size, image and location are ids from the lists above."""

    name: str
    size: str
    image: str
    location: str | None = None
    user_data: str | None = field(default=None, repr=False)
    """cloud-init user-data (a `#cloud-config` document), run once at first boot. It may
    carry credentials (the database URL the node uses): kept out of `repr`, so out of logs."""
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Node:
    """A machine at the vendor."""

    id: str
    name: str
    state: NodeState
    public_ips: tuple[str, ...] = ()
    private_ips: tuple[str, ...] = ()
    size: str | None = None
    image: str | None = None
    location: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class ComputeProvider(Protocol):
    """A hosting vendor's machines."""

    async def list_sizes(self, location: str | None = None) -> list[NodeSize]:
        """Machine sizes offered (in `location`, where the vendor distinguishes)."""
        ...

    async def list_images(self, ids: list[str] | None = None) -> list[NodeImage]:
        """Images, only those of `ids` when given (some vendors list thousands)."""
        ...

    async def list_locations(self) -> list[NodeLocation]:
        """Regions or zones."""
        ...

    async def create_node(self, spec: NodeSpec) -> Node:
        """Create and start a node; returns at once (its state may still be PENDING).
        NotFound for an unknown size, image or location."""
        ...

    async def list_nodes(self, tags: Mapping[str, str] | None = None) -> list[Node]:
        """Nodes not yet terminated, only those carrying every tag of `tags` when given."""
        ...

    async def get_node(self, node_id: str) -> Node:
        """One node by id; NotFound when there is none (or it is terminated)."""
        ...

    async def reboot_node(self, node_id: str) -> None:
        """Reboot a node; NotFound when there is none."""
        ...

    async def destroy_node(self, node_id: str) -> None:
        """Destroy a node for good. Idempotent: a node already gone is not an error."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
