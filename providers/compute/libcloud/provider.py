"""`LibcloudCompute`: the `ComputeProvider` over one libcloud compute driver.

One driver, one call at a time. libcloud drivers are not thread-safe (a call mutates the
driver's connection: its context, its signing state) and some keep state in the instance
(the dummy driver's nodes live in it): so this provider makes one driver, in a worker thread
on first use (some drivers reach their vendor as they are made), and runs every call in a
worker thread through a capacity limiter of one. Fleet work is a few dozen calls, each
waiting on the vendor anyway; serialising them costs little and avoids both problems.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import anyio
import anyio.to_thread
from libcloud.common.exceptions import BaseHTTPError
from libcloud.compute.base import Node as LibcloudNode
from libcloud.compute.base import NodeDriver, NodeImage, NodeLocation, NodeSize
from libcloud.compute.drivers.ec2 import BaseEC2NodeDriver
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from providers.compute import base
from providers.compute.libcloud.drivers import (
    build_driver,
    create_node_arguments,
    driver_class,
    location_id,
    node_state,
    provider_value,
    to_image,
    to_location,
    to_size,
)
from providers.compute.libcloud.tags import DUMMY_LOCATION
from providers.errors import ConfigurationError, NotFound
from providers.libcloud_errors import close_session, is_not_found, map_error

T = TypeVar("T")


def _carries(node: base.Node, tags: Mapping[str, str]) -> bool:
    return all(node.tags.get(key) == value for key, value in tags.items())


_EXTRA_KEPT = ("status", "dns_name", "launch_time", "created_at")
"""Vendor detail kept in `Node.extra` (for logs: never user-data, which carries credentials)."""


class LibcloudCompute:
    """A `ComputeProvider` over one libcloud compute driver."""

    kind: ClassVar[str] = "libcloud"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        driver: str
        """A libcloud compute `Provider`: its value (`ec2`, `gce`, `digitalocean`, `dummy`)
        or its constant's name in any case (`EC2`, `digital_ocean`)."""
        key: SecretStr | None = None
        """The driver's first argument: an access key id, a service account e-mail, an API
        token (DigitalOcean)."""
        secret: SecretStr | None = None
        region: str | None = None
        host: str | None = None
        port: int | None = Field(None, ge=1, le=65_535)
        secure: bool | None = None
        project: str | None = None
        """The project (GCE's `project` argument)."""
        timeout: float = Field(30, gt=0, le=600)
        """Seconds per HTTP request."""
        extra: dict[str, Any] = Field(default_factory=dict)
        """Further driver constructor arguments, e.g. `{signature_version = "4"}` for EC2
        at an S3-compatible endpoint, `datacenter` for GCE, `ex_force_auth_url` for
        OpenStack."""
        create_options: dict[str, Any] = Field(default_factory=dict)
        """Further `create_node` arguments for every node, e.g. `ex_keyname`,
        `ex_security_groups` (EC2), `ex_network` (GCE). Tags and user-data are ours."""

        @field_validator("driver")
        @classmethod
        def _known_driver(cls, value: str) -> str:
            # Checked with the settings, before anything runs: a driver we cannot tag for
            # would leave us unable to tell our nodes from others.
            value = provider_value(value)
            driver_class(value)
            return value

        @model_validator(mode="after")
        def _known_create_options(self) -> LibcloudCompute.Options:
            # A key create_node does not take would fail every node's creation with a bare
            # TypeError: refused with the settings instead, naming it.
            found, _ = driver_class(self.driver)
            accepted = create_node_arguments(found)
            ours = {"name", "size", "image", "location"}
            for key in sorted(self.create_options):
                if key in ours:
                    raise ValueError(f"create_options.{key} is set by the fleet, not here")
                if accepted is not None and key not in accepted:
                    raise ValueError(
                        f"create_options.{key}: the {self.driver} driver's create_node takes "
                        f"no such argument (it takes: {', '.join(sorted(accepted - ours))})"
                    )
            return self

    def __init__(self, options: LibcloudCompute.Options) -> None:
        self.options = options
        self._driver_class, self._style = driver_class(options.driver)
        self._ec2 = issubclass(self._driver_class, BaseEC2NodeDriver)
        self._instance: NodeDriver | None = None
        self._calls = anyio.CapacityLimiter(1)

    # -- the interface ------------------------------------------------------------------

    async def list_sizes(self, location: str | None = None) -> list[base.NodeSize]:
        def sizes() -> list[base.NodeSize]:
            where = None if location is None else self._location(location)
            return [to_size(size) for size in self._driver().list_sizes(location=where)]

        return await self._run("list sizes", sizes)

    async def list_images(self, ids: list[str] | None = None) -> list[base.NodeImage]:
        if ids is not None and not ids:
            return []

        def images() -> list[base.NodeImage]:
            if ids is None:
                return [to_image(image) for image in self._driver().list_images()]
            return [to_image(image) for image in self._images(ids)]

        return await self._run("list images", images)

    async def list_locations(self) -> list[base.NodeLocation]:
        def locations() -> list[base.NodeLocation]:
            return [to_location(location) for location in self._driver().list_locations()]

        return await self._run("list locations", locations)

    async def create_node(self, spec: base.NodeSpec) -> base.Node:
        def create() -> base.Node:
            location = None if spec.location is None else self._location(spec.location)
            size = self._size(spec.size, location)
            found = self._images([spec.image])
            if not found:
                raise NotFound(f"no image {spec.image!r}")
            node = self._style.create(
                self._driver(), self.options.create_options, spec, size, found[0], location
            )
            return self._checked(node, spec)

        return await self._run("create node", create)

    def _checked(self, raw: LibcloudNode, spec: base.NodeSpec) -> base.Node:
        """The node just created, once its tags are read back as `spec`'s: a node whose tags
        did not stick (a vendor dropping or rewriting them) would never be listed as ours,
        so it would be made again on every apply and never destroyed. Such a node is
        destroyed here and the configuration refused."""
        node = self._node(raw)
        if _carries(node, spec.tags):
            return node
        with contextlib.suppress(NotFound):  # not listed yet: the answer's tags decide
            node = self._node(self._find(node.id))
        if _carries(node, spec.tags):
            return node
        missing = sorted(key for key, value in spec.tags.items() if node.tags.get(key) != value)
        self._driver().destroy_node(raw)
        raise ConfigurationError(
            f"libcloud compute driver {self.options.driver!r}: node {node.id} did not keep our "
            f"tags ({', '.join(missing)}), so it was destroyed; check create_options and the "
            "vendor's tag rules"
        )

    async def list_nodes(self, tags: Mapping[str, str] | None = None) -> list[base.Node]:
        wanted = dict(tags or {})

        def nodes() -> list[base.Node]:
            found = []
            for raw in self._list_raw(wanted):
                node = self._node(raw)
                if node.state is base.NodeState.TERMINATED:
                    continue
                if all(node.tags.get(key) == value for key, value in wanted.items()):
                    found.append(node)
            return found

        return await self._run("list nodes", nodes)

    async def get_node(self, node_id: str) -> base.Node:
        return await self._run("get node", lambda: self._node(self._find(node_id)))

    async def reboot_node(self, node_id: str) -> None:
        def reboot() -> None:
            self._driver().reboot_node(self._find(node_id))

        await self._run("reboot node", reboot)

    async def destroy_node(self, node_id: str) -> None:
        def destroy() -> None:
            try:
                node = self._find(node_id)
            except NotFound:
                return
            try:
                self._driver().destroy_node(node)
            except BaseHTTPError as exc:
                # Gone between the look-up and the destroy: what was asked for is done.
                if not is_not_found(exc):
                    raise

        await self._run("destroy node", destroy)

    async def close(self) -> None:
        if self._instance is not None:
            await anyio.to_thread.run_sync(close_session, self._instance, limiter=self._calls)

    def _driver(self) -> NodeDriver:
        """The driver, made on first use in a worker thread (under the one-call limiter):
        some drivers reach their vendor as they are made (GCE fetches a token)."""
        if self._instance is None:
            self._instance = build_driver(self._driver_class, self.options)
        return self._instance

    # -- in the worker thread -----------------------------------------------------------

    def _list_raw(self, tags: Mapping[str, str]) -> list[LibcloudNode]:
        if self._ec2 and tags:
            # Filtered by the vendor (and again by us): an account may hold many machines.
            filters = {f"tag:{key}": value for key, value in tags.items()}
            ec2: Any = self._driver()  # its type comments are wrong (`str` for a dict)
            return list(ec2.list_nodes(ex_filters=filters))
        if self._style.name == "gce":
            gce: Any = self._driver()  # its default lists the driver's own zone only
            return list(gce.list_nodes(ex_zone="all"))
        return list(self._driver().list_nodes())

    def _find(self, node_id: str) -> LibcloudNode:
        """The vendor's node `node_id`, not terminated; NotFound otherwise."""
        if self._ec2:
            # A filter, not InstanceId: an unknown id is an empty answer, not an error to
            # tell apart from others by its message.
            ec2: Any = self._driver()
            candidates: list[LibcloudNode] = ec2.list_nodes(ex_filters={"instance-id": node_id})
        else:
            candidates = self._list_raw({})
        for node in candidates:
            if str(node.id) == node_id and node_state(node) is not base.NodeState.TERMINATED:
                return node
        raise NotFound(f"no node {node_id!r}")

    def _location(self, wanted: str) -> NodeLocation:
        for location in self._driver().list_locations():
            if location_id(location) == wanted:
                return location
        raise NotFound(f"no location {wanted!r}")

    def _size(self, size_id: str, location: NodeLocation | None) -> NodeSize:
        for size in self._driver().list_sizes(location=location):
            if str(size.id) == size_id:
                return size
        raise NotFound(f"no size {size_id!r}")

    def _images(self, ids: list[str]) -> list[NodeImage]:
        if self._ec2:
            # Filtered by the vendor (listing every public image takes long), by a filter
            # rather than ImageId, which fails the whole call for one unknown id.
            ec2: Any = self._driver()
            return list(ec2.list_images(ex_filters={"image-id": ids}))
        wanted = set(ids)
        return [image for image in self._driver().list_images() if str(image.id) in wanted]

    def _node(self, node: LibcloudNode) -> base.Node:
        extra = node.extra or {}
        size = extra.get("instance_type") or extra.get("size_slug") or extra.get("flavorId")
        if size is None and node.size is not None:
            size = node.size.id
        image = extra.get("image_id") or extra.get("imageId")
        if image is None and node.image is not None:
            image = node.image.id
        location = (
            extra.get("availability")
            or extra.get("zone_name")
            or extra.get("region")
            or extra.get("availability_zone")
            or extra.get("zone")
            or extra.get(DUMMY_LOCATION)
        )
        if location is not None and not isinstance(location, str):
            location = getattr(location, "name", None) or str(location)
        return base.Node(
            id=str(node.id),
            name=str(node.name),
            state=node_state(node),
            public_ips=tuple(str(ip) for ip in node.public_ips or ()),
            private_ips=tuple(str(ip) for ip in node.private_ips or ()),
            size=None if size is None else str(size),
            image=None if image is None else str(image),
            location=location,
            tags=self._style.read(node),
            extra={key: extra[key] for key in _EXTRA_KEPT if key in extra},
        )

    async def _run(self, operation: str, function: Callable[[], T]) -> T:
        try:
            return await anyio.to_thread.run_sync(function, limiter=self._calls)
        except Exception as exc:
            mapped = map_error(operation, exc)
            if mapped is None or mapped is exc:
                raise
            raise mapped from None
