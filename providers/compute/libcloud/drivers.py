"""Making libcloud compute drivers from our options, and reading what they answer: states,
sizes, images and locations in our dataclasses, and libcloud's errors as `providers.errors`."""

from __future__ import annotations

import contextlib
import inspect
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

from libcloud.common.types import InvalidCredsError, LibcloudError
from libcloud.compute.base import Node as LibcloudNode
from libcloud.compute.base import NodeDriver, NodeImage, NodeLocation, NodeSize
from libcloud.compute.drivers.dummy import DummyNodeDriver
from libcloud.compute.drivers.ec2 import BaseEC2NodeDriver, EC2Response
from libcloud.compute.providers import get_driver
from libcloud.compute.types import NodeState as LibcloudState
from libcloud.compute.types import Provider

from providers.compute import base
from providers.compute.libcloud.tags import TagStyle, tag_style
from providers.errors import ConfigurationError

if TYPE_CHECKING:
    from providers.compute.libcloud.provider import LibcloudCompute

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


def driver_class(value: str) -> tuple[type[NodeDriver], TagStyle]:
    """The driver class of Provider `value` and how its nodes are tagged; ValueError (a
    ConfigurationError once through the registry) when it cannot be loaded or tagged."""
    try:
        found: type[NodeDriver] = get_driver(value)
    except (AttributeError, ImportError, LibcloudError) as exc:
        raise ValueError(
            f"libcloud compute driver {value!r} cannot be loaded: {type(exc).__name__}"
        ) from None
    style = tag_style(found)
    if style is None:
        raise ValueError(
            f"libcloud compute driver {value!r}: no known way to tag its nodes, so ours "
            "could not be told apart (a provider package can add this vendor)"
        )
    return found, style


def create_node_arguments(driver_class: type[NodeDriver]) -> frozenset[str] | None:
    """The keyword arguments `create_node` of `driver_class` takes; None when it takes any
    (`**kwargs`). A class choosing a subclass by API version in `__new__` (OpenStack,
    Linode) takes what any of its subclasses takes: the version is only known once made."""
    classes = [driver_class]
    if driver_class.__new__ is not object.__new__:
        pending = list(driver_class.__subclasses__())
        while pending:
            sub = pending.pop()
            classes.append(sub)
            pending.extend(sub.__subclasses__())
    names: set[str] = set()
    for cls in classes:
        parameters = inspect.signature(cls.create_node).parameters.values()
        if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
            if cls is driver_class:
                return None
            continue
        names.update(parameter.name for parameter in parameters if parameter.name != "self")
    return frozenset(names)


def provider_value(name: str) -> str:
    """A libcloud compute Provider value from its value or its constant's name."""
    with contextlib.suppress(ValueError):
        return str(Provider(name).value)
    with contextlib.suppress(KeyError):
        return str(Provider[name.upper()].value)
    raise ValueError(f"unknown libcloud compute driver {name!r}")


def build_driver(driver_class: type[NodeDriver], options: LibcloudCompute.Options) -> NodeDriver:
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
        connection.responseCls = EC2ErrorResponse
    return driver


class EC2ErrorResponse(EC2Response):
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


def node_state(node: LibcloudNode) -> base.NodeState:
    status = (node.extra or {}).get("status")
    if isinstance(node.driver, BaseEC2NodeDriver) and status in _EC2_STATES:
        return _EC2_STATES[str(status)]
    try:
        return _STATES.get(LibcloudState(node.state), base.NodeState.UNKNOWN)
    except ValueError:
        return base.NodeState.UNKNOWN


def to_size(size: NodeSize) -> base.NodeSize:
    return base.NodeSize(
        id=str(size.id),
        name=str(size.name),
        ram_mb=_int(size.ram),
        disk_gb=_int(size.disk),
        cpus=_float((size.extra or {}).get("cpu") or (size.extra or {}).get("vcpus")),
        price_per_hour=_float(size.price),
    )


def to_image(image: NodeImage) -> base.NodeImage:
    return base.NodeImage(id=str(image.id), name=str(image.name or image.id))


def to_location(location: NodeLocation) -> base.NodeLocation:
    return base.NodeLocation(
        id=location_id(location), name=str(location.name), country=location.country or None
    )


def location_id(location: NodeLocation) -> str:
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
