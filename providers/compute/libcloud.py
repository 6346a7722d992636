"""Any apache-libcloud compute driver that can tag its nodes (EC2 and its kin, Google Compute
Engine, OpenStack, DigitalOcean), plus libcloud's in-memory dummy driver for tests.

The only module that imports libcloud's compute drivers.

One driver, one call at a time. libcloud drivers are not thread-safe (a call mutates the
driver's connection: its context, its signing state) and some keep state in the instance
(the dummy driver's nodes live in it): so this provider builds one driver and runs every call
in a worker thread through a capacity limiter of one. Fleet work is a few dozen calls, each
waiting on the vendor anyway; serialising them costs little and avoids both problems.

Ownership is by tags, never by names: each supported driver has a way to put our tags on a
node at creation and read them back (`_TagStyle`). A driver for which we know no way is
refused when the provider is configured (a `ConfigurationError`), rather than left to guess
which nodes are ours; a package can add such a vendor through the entry-point group
`holdfast.providers.compute`. libcloud's dummy driver stores nothing beyond a node list, and
even reuses ids after a destroy: this provider keeps the name, tags, location and user-data
of the nodes it created there on the dummy's own node objects (the dummy lives only as long as
this provider anyway) and gives each a unique id.
"""

from __future__ import annotations

import contextlib
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import anyio
import anyio.to_thread
import requests.exceptions
from libcloud.common.exceptions import BaseHTTPError, RateLimitReachedError
from libcloud.common.types import (
    InvalidCredsError,
    LibcloudError,
    MalformedResponseError,
    ServiceUnavailableError,
)
from libcloud.compute.base import Node as LibcloudNode
from libcloud.compute.base import NodeDriver, NodeImage, NodeLocation, NodeSize
from libcloud.compute.drivers.dummy import DummyNodeDriver
from libcloud.compute.drivers.ec2 import BaseEC2NodeDriver, EC2Response
from libcloud.compute.providers import get_driver
from libcloud.compute.types import NodeState as LibcloudState
from libcloud.compute.types import Provider
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from providers.compute import base
from providers.errors import ConfigurationError, NotFound, ProviderError, Unavailable

T = TypeVar("T")

_STATES: dict[LibcloudState, base.NodeState] = {
    LibcloudState.RUNNING: base.NodeState.RUNNING,
    LibcloudState.NORMAL: base.NodeState.RUNNING,
    LibcloudState.STARTING: base.NodeState.PENDING,
    LibcloudState.PENDING: base.NodeState.PENDING,
    LibcloudState.REBOOTING: base.NodeState.REBOOTING,
    LibcloudState.STOPPING: base.NodeState.STOPPING,
    LibcloudState.STOPPED: base.NodeState.STOPPED,
    LibcloudState.SUSPENDED: base.NodeState.STOPPED,
    LibcloudState.PAUSED: base.NodeState.STOPPED,
    LibcloudState.TERMINATED: base.NodeState.TERMINATED,
    LibcloudState.ERROR: base.NodeState.ERROR,
    # Changes to a node that keeps running (resize, live migration): it is still there.
    LibcloudState.RECONFIGURING: base.NodeState.RUNNING,
    LibcloudState.MIGRATING: base.NodeState.RUNNING,
    LibcloudState.UPDATING: base.NodeState.RUNNING,
    LibcloudState.UNKNOWN: base.NodeState.UNKNOWN,
}

_EC2_STATES: dict[str, base.NodeState] = {
    # libcloud maps these two to UNKNOWN; a node shutting down is on its way to terminated.
    "shutting-down": base.NodeState.TERMINATED,
    "stopping": base.NodeState.STOPPING,
}

_NOT_FOUND_CODES = ("NotFound", "InvalidAMIID", "does not exist", "not found")
_THROTTLED_CODES = ("RequestLimitExceeded", "Throttling", "ServiceUnavailable", "Unavailable")


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
            value = _provider_value(value)
            _driver_class(value)
            return value

    def __init__(self, options: LibcloudCompute.Options) -> None:
        self.options = options
        self._driver_class, self._style = _driver_class(options.driver)
        self._ec2 = issubclass(self._driver_class, BaseEC2NodeDriver)
        self._instance: NodeDriver | None = None
        self._calls = anyio.CapacityLimiter(1)

    # -- the interface ------------------------------------------------------------------

    async def list_sizes(self, location: str | None = None) -> list[base.NodeSize]:
        def sizes() -> list[base.NodeSize]:
            where = None if location is None else self._location(location)
            return [_size(size) for size in self._driver().list_sizes(location=where)]

        return await self._run("list sizes", sizes)

    async def list_images(self, ids: list[str] | None = None) -> list[base.NodeImage]:
        if ids is not None and not ids:
            return []

        def images() -> list[base.NodeImage]:
            if ids is None:
                return [_image(image) for image in self._driver().list_images()]
            return [_image(image) for image in self._images(ids)]

        return await self._run("list images", images)

    async def list_locations(self) -> list[base.NodeLocation]:
        def locations() -> list[base.NodeLocation]:
            return [_location(location) for location in self._driver().list_locations()]

        return await self._run("list locations", locations)

    async def create_node(self, spec: base.NodeSpec) -> base.Node:
        def create() -> base.Node:
            location = None if spec.location is None else self._location(spec.location)
            size = self._size(spec.size, location)
            found = self._images([spec.image])
            if not found:
                raise NotFound(f"no image {spec.image!r}")
            node = self._style.create(self, spec, size, found[0], location)
            return self._node(node)

        return await self._run("create node", create)

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
                if not _is_not_found(exc):
                    raise

        await self._run("destroy node", destroy)

    async def close(self) -> None:
        if self._instance is not None:
            await anyio.to_thread.run_sync(_close_driver, self._instance, limiter=self._calls)

    def _driver(self) -> NodeDriver:
        """The driver, made on first use in a worker thread (under the one-call limiter):
        some drivers reach their vendor as they are made (GCE fetches a token)."""
        if self._instance is None:
            self._instance = _build_driver(self._driver_class, self.options)
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
            if str(node.id) == node_id and _state(node) is not base.NodeState.TERMINATED:
                return node
        raise NotFound(f"no node {node_id!r}")

    def _location(self, location_id: str) -> NodeLocation:
        for location in self._driver().list_locations():
            if _location_id(location) == location_id:
                return location
        raise NotFound(f"no location {location_id!r}")

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
            or extra.get(_DUMMY_LOCATION)
        )
        if location is not None and not isinstance(location, str):
            location = getattr(location, "name", None) or str(location)
        return base.Node(
            id=str(node.id),
            name=str(node.name),
            state=_state(node),
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
        except ProviderError:
            raise
        except InvalidCredsError:
            raise ConfigurationError(f"libcloud {operation}: credentials refused") from None
        except (
            RateLimitReachedError,
            ServiceUnavailableError,
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            ConnectionError,
            TimeoutError,
        ) as exc:
            raise Unavailable(f"libcloud {operation}: {type(exc).__name__}") from None
        except BaseHTTPError as exc:
            raise _http_error(operation, exc) from None
        except (LibcloudError, MalformedResponseError, OSError, ValueError, KeyError) as exc:
            # libcloud's messages embed the driver's repr and may echo requests: type only.
            raise ProviderError(f"libcloud {operation}: {type(exc).__name__}") from None


# -- tags and user-data, per driver --------------------------------------------------------

_DUMMY_TAGS = "holdfast_tags"
_DUMMY_LOCATION = "holdfast_location"
_DUMMY_USER_DATA = "holdfast_user_data"
_EXTRA_KEPT = ("status", "dns_name", "launch_time", "created_at")
"""Vendor detail kept in `Node.extra` (for logs: never user-data, which carries credentials)."""


@dataclass(frozen=True)
class _TagStyle:
    """How one family of drivers creates a tagged node with user-data, and reads tags back."""

    name: str
    create_args: Callable[[base.NodeSpec], dict[str, Any]]
    read_tags: Callable[[Mapping[str, Any]], dict[str, str]]

    def create(
        self,
        provider: LibcloudCompute,
        spec: base.NodeSpec,
        size: NodeSize,
        image: NodeImage,
        location: NodeLocation | None,
    ) -> LibcloudNode:
        driver = provider._driver()
        if isinstance(driver, DummyNodeDriver):
            return _create_dummy(driver, spec, size, image, location)
        arguments: dict[str, Any] = dict(provider.options.create_options)
        arguments.update(self.create_args(spec))
        if location is not None:
            arguments["location"] = location
        node: LibcloudNode = driver.create_node(name=spec.name, size=size, image=image, **arguments)
        return node

    def read(self, node: LibcloudNode) -> dict[str, str]:
        return self.read_tags(node.extra or {})


def ec2_create_args(spec: base.NodeSpec) -> dict[str, Any]:
    """EC2 tags the instance in RunInstances itself (TagSpecification): never untagged."""
    arguments: dict[str, Any] = {"ex_metadata": dict(spec.tags)}
    if spec.user_data is not None:
        arguments["ex_userdata"] = spec.user_data
    return arguments


def gce_create_args(spec: base.NodeSpec) -> dict[str, Any]:
    """GCE labels (lower-case keys and values, which our tags are) and the `user-data`
    metadata key cloud-init reads there."""
    arguments: dict[str, Any] = {"ex_labels": dict(spec.tags)}
    if spec.user_data is not None:
        arguments["ex_metadata"] = {"user-data": spec.user_data}
    return arguments


def openstack_create_args(spec: base.NodeSpec) -> dict[str, Any]:
    """OpenStack server metadata (key/value) and user-data."""
    arguments: dict[str, Any] = {"ex_metadata": dict(spec.tags)}
    if spec.user_data is not None:
        arguments["ex_userdata"] = spec.user_data
    return arguments


def digitalocean_create_args(spec: base.NodeSpec) -> dict[str, Any]:
    """DigitalOcean tags are plain strings: each of ours is `key:value`."""
    arguments: dict[str, Any] = {
        "ex_create_attr": {"tags": [f"{key}:{value}" for key, value in spec.tags.items()]}
    }
    if spec.user_data is not None:
        arguments["ex_user_data"] = spec.user_data
    return arguments


def _mapping_tags(key: str) -> Callable[[Mapping[str, Any]], dict[str, str]]:
    def read(extra: Mapping[str, Any]) -> dict[str, str]:
        found = extra.get(key) or {}
        if not isinstance(found, Mapping):
            return {}
        return {str(name): str(value) for name, value in found.items()}

    return read


def read_string_tags(extra: Mapping[str, Any]) -> dict[str, str]:
    """`key:value` string tags back to a mapping; tags without a colon are not ours."""
    found: dict[str, str] = {}
    for tag in extra.get("tags") or ():
        name, colon, value = str(tag).partition(":")
        if colon:
            found[name] = value
    return found


_STYLES: dict[str, _TagStyle] = {
    "ec2": _TagStyle("ec2", ec2_create_args, _mapping_tags("tags")),
    Provider.GCE.value: _TagStyle("gce", gce_create_args, _mapping_tags("labels")),
    Provider.OPENSTACK.value: _TagStyle(
        "openstack", openstack_create_args, _mapping_tags("metadata")
    ),
    Provider.DIGITAL_OCEAN.value: _TagStyle(
        "digitalocean", digitalocean_create_args, read_string_tags
    ),
    Provider.DUMMY.value: _TagStyle("dummy", lambda spec: {}, _mapping_tags(_DUMMY_TAGS)),
}


def _driver_class(value: str) -> tuple[type[NodeDriver], _TagStyle]:
    """The driver class of Provider `value` and how its nodes are tagged; ValueError (a
    ConfigurationError once through the registry) when it cannot be loaded or tagged."""
    try:
        driver_class: type[NodeDriver] = get_driver(value)
    except (AttributeError, ImportError, LibcloudError) as exc:
        raise ValueError(
            f"libcloud compute driver {value!r} cannot be loaded: {type(exc).__name__}"
        ) from None
    style = _tag_style(driver_class)
    if style is None:
        raise ValueError(
            f"libcloud compute driver {value!r}: no known way to tag its nodes, so ours "
            "could not be told apart (a provider package can add this vendor)"
        )
    return driver_class, style


def _tag_style(driver_class: type[NodeDriver]) -> _TagStyle | None:
    if issubclass(driver_class, BaseEC2NodeDriver):
        return _STYLES["ec2"]
    driver_type = getattr(driver_class, "type", None)
    return _STYLES.get(str(getattr(driver_type, "value", driver_type)))


def _create_dummy(
    driver: DummyNodeDriver,
    spec: base.NodeSpec,
    size: NodeSize,
    image: NodeImage,
    location: NodeLocation | None,
) -> LibcloudNode:
    """The dummy driver ignores names, tags and user-data and reuses ids after a destroy:
    its node object (kept in the driver, which lives as long as this provider) carries them."""
    dummy: Any = driver  # untyped
    node: LibcloudNode = dummy.create_node(name=spec.name, size=size, image=image)
    node.id = f"dummy-{secrets.token_hex(8)}"
    node.name = spec.name
    node.size = size
    node.image = image
    node.extra = {
        **(node.extra or {}),
        _DUMMY_TAGS: dict(spec.tags),
        _DUMMY_USER_DATA: spec.user_data,
        _DUMMY_LOCATION: None if location is None else str(location.id),
    }
    return node


# -- helpers ---------------------------------------------------------------------------


def _provider_value(name: str) -> str:
    """A libcloud compute Provider value from its value or its constant's name."""
    with contextlib.suppress(ValueError):
        return str(Provider(name).value)
    with contextlib.suppress(KeyError):
        return str(Provider[name.upper()].value)
    raise ValueError(f"unknown libcloud compute driver {name!r}")


def _build_driver(driver_class: type[NodeDriver], options: LibcloudCompute.Options) -> NodeDriver:
    key = None if options.key is None else options.key.get_secret_value()
    if issubclass(driver_class, DummyNodeDriver):
        # Its one argument is a count of nodes to start with (0: two foreign nodes).
        return driver_class(key or 0)
    driver: NodeDriver
    arguments: dict[str, Any] = {"timeout": options.timeout}
    if options.secret is not None:
        arguments["secret"] = options.secret.get_secret_value()
    for name in ("region", "host", "port", "secure", "project"):
        value = getattr(options, name)
        if value is not None:
            arguments[name] = value
    arguments.update(options.extra)
    try:
        driver = driver_class(key, **arguments)
    except TypeError as exc:
        raise ConfigurationError(
            f"libcloud compute driver {options.driver!r} does not take these options: "
            f"{', '.join(sorted(arguments))} ({str(exc)[:200]})"
        ) from None
    except (ValueError, LibcloudError) as exc:
        raise ConfigurationError(
            f"libcloud compute driver {options.driver!r} refused its options: "
            f"{type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    connection: Any = driver.connection
    if isinstance(driver, BaseEC2NodeDriver) and issubclass(connection.responseCls, EC2Response):
        connection.responseCls = _EC2ErrorResponse
    return driver


class _EC2ErrorResponse(EC2Response):
    """EC2 errors read whatever their envelope: libcloud's parser expects exactly two
    children in an un-namespaced `Errors/Error` and fails with a ValueError (or an empty
    message) otherwise, which EC2-compatible servers (moto, some private clouds) send: so
    refused credentials or a missing node would look like a crash. A 401 or 403 is refused
    credentials whatever the body says."""

    def parse_error(self) -> str:
        if int(self.status) in (401, 403):
            raise InvalidCredsError(f"HTTP {self.status}")
        try:
            body = ET.fromstring(str(self.body))  # noqa: S314 (the configured vendor's answer)
        except ET.ParseError:
            return f"HTTP {self.status}"
        found = []
        for element in body.iter():
            if _local(element.tag) != "Error":
                continue
            fields = {_local(child.tag): (child.text or "") for child in element}
            code = fields.get("Code", "")
            if code in ("AuthFailure", "InvalidClientTokenId", "SignatureDoesNotMatch"):
                raise InvalidCredsError(code)
            found.append(f"{code}: {fields.get('Message', '')}")
        return "\n".join(found) or f"HTTP {self.status}"


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _close_driver(driver: NodeDriver) -> None:
    session = getattr(getattr(driver.connection, "connection", None), "session", None)
    close = getattr(session, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()


def _state(node: LibcloudNode) -> base.NodeState:
    status = (node.extra or {}).get("status")
    if isinstance(node.driver, BaseEC2NodeDriver) and status in _EC2_STATES:
        return _EC2_STATES[str(status)]
    try:
        return _STATES.get(LibcloudState(node.state), base.NodeState.UNKNOWN)
    except ValueError:
        return base.NodeState.UNKNOWN


def _is_not_found(exc: BaseHTTPError) -> bool:
    return exc.code == 404 or any(code in str(exc.message) for code in _NOT_FOUND_CODES)


def _http_error(operation: str, exc: BaseHTTPError) -> ProviderError:
    message = str(exc.message).splitlines()[0][:200] if exc.message else ""
    detail = f"libcloud {operation}: HTTP {exc.code} {message}".rstrip()
    if exc.code in (401, 403):
        return ConfigurationError(f"libcloud {operation}: credentials refused (HTTP {exc.code})")
    if _is_not_found(exc):
        return NotFound(detail)
    if exc.code == 429 or exc.code >= 500 or any(c in message for c in _THROTTLED_CODES):
        return Unavailable(detail)
    return ProviderError(detail)


def _size(size: NodeSize) -> base.NodeSize:
    return base.NodeSize(
        id=str(size.id),
        name=str(size.name),
        ram_mb=_int(size.ram),
        disk_gb=_int(size.disk),
        cpus=_float((size.extra or {}).get("cpu") or (size.extra or {}).get("vcpus")),
        price_per_hour=_float(size.price),
    )


def _image(image: NodeImage) -> base.NodeImage:
    return base.NodeImage(id=str(image.id), name=str(image.name or image.id))


def _location(location: NodeLocation) -> base.NodeLocation:
    return base.NodeLocation(
        id=_location_id(location), name=str(location.name), country=location.country or None
    )


def _location_id(location: NodeLocation) -> str:
    """EC2's locations are numbered in libcloud: their availability zone names them."""
    zone = getattr(location, "availability_zone", None)
    name = getattr(zone, "name", None)
    return str(name) if name else str(location.id)


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
