"""Tags and user-data per family of libcloud compute drivers: how a node is created carrying
our tags (EC2, OpenStack and Azure tags, GCE labels, DigitalOcean and Linode `key:value`
tags) and how they are
read back. Ownership is decided by these tags only, never by names.

libcloud's dummy driver stores nothing beyond a node list, and even reuses ids after a
destroy: the nodes this provider creates there carry their name, tags, location and
user-data on the dummy's own node objects (the dummy lives only as long as the provider) and
get a unique id each."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from libcloud.compute.base import Node as LibcloudNode
from libcloud.compute.base import NodeDriver, NodeImage, NodeLocation, NodeSize
from libcloud.compute.drivers.dummy import DummyNodeDriver
from libcloud.compute.drivers.ec2 import BaseEC2NodeDriver
from libcloud.compute.drivers.openstack import OpenStackNodeDriver
from libcloud.compute.types import Provider

from providers.compute import base
from providers.errors import ConfigurationError

DUMMY_TAGS = "holdfast_tags"
DUMMY_LOCATION = "holdfast_location"
DUMMY_USER_DATA = "holdfast_user_data"


@dataclass(frozen=True)
class TagStyle:
    """How one family of drivers creates a tagged node with user-data, and reads tags back."""

    name: str
    create_args: Callable[[base.NodeSpec], dict[str, Any]]
    read_tags: Callable[[Mapping[str, Any]], dict[str, str]]
    operator_args: Callable[[Mapping[str, Any]], dict[str, Any]] = dict
    """The operator's `create_options` in the form ours merge into (GCE metadata given as a
    list of items becomes a mapping)."""

    def create(
        self,
        driver: NodeDriver,
        create_options: Mapping[str, Any],
        spec: base.NodeSpec,
        size: NodeSize,
        image: NodeImage,
        location: NodeLocation | None,
    ) -> LibcloudNode:
        """Create `spec`'s node with its tags and user-data (`create_options`: further
        arguments the operator configured)."""
        if isinstance(driver, DummyNodeDriver):
            return create_dummy(driver, spec, size, image, location)
        arguments = merge_arguments(self.operator_args(create_options), self.create_args(spec))
        if location is not None:
            arguments["location"] = location
        node: LibcloudNode = driver.create_node(name=spec.name, size=size, image=image, **arguments)
        return node

    def read(self, node: LibcloudNode) -> dict[str, str]:
        return self.read_tags(node.extra or {})


def merge_arguments(operator: Mapping[str, Any], ours: Mapping[str, Any]) -> dict[str, Any]:
    """The operator's `create_options` with our arguments merged in, deeply: where both give
    a mapping (EC2 and GCE `ex_metadata`, DigitalOcean `ex_create_attr`) both sets of keys
    are kept, ours winning on a key both give; where both give a list (string tags) the
    operator's items stay beside ours. An operator's `env = prod` tag survives ours."""
    merged: dict[str, Any] = dict(operator)
    for key, value in ours.items():
        theirs = merged.get(key)
        if isinstance(theirs, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_arguments(theirs, value)
        elif isinstance(theirs, list | tuple) and isinstance(value, list | tuple):
            merged[key] = [item for item in theirs if item not in value] + list(value)
        else:
            merged[key] = value
    return merged


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


def gce_operator_args(create_options: Mapping[str, Any]) -> dict[str, Any]:
    """GCE's driver takes metadata in five forms (`{"items": [{"key", "value"}]}`, a list of
    such items or of one-key mappings, one `{"key", "value"}`, or a plain mapping): an
    operator's is made a plain mapping, so that our `user-data` merges into it rather than
    into a form the driver would misread."""
    arguments = dict(create_options)
    metadata = arguments.get("ex_metadata")
    if metadata is None:
        return arguments
    items: Any = metadata
    if isinstance(metadata, Mapping):
        if set(metadata) == {"key", "value"}:
            items = [metadata]
        elif set(metadata) == {"items"}:
            items = metadata["items"]
        else:
            return arguments
    flat: dict[str, Any] = {}
    for item in items if isinstance(items, list | tuple) else ():
        if isinstance(item, Mapping) and set(item) == {"key", "value"}:
            flat[str(item["key"])] = item["value"]
        elif isinstance(item, Mapping) and len(item) == 1:
            flat.update({str(key): value for key, value in item.items()})
        else:
            raise ConfigurationError("create_options.ex_metadata: not a form GCE takes")
    arguments["ex_metadata"] = flat
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


def linode_create_args(spec: base.NodeSpec) -> dict[str, Any]:
    """Linode (API v4) tags are plain strings like DigitalOcean's (`key:value`); user-data is
    `ex_userdata` (cloud-init through Linode's metadata service)."""
    arguments: dict[str, Any] = {"ex_tags": [f"{key}:{value}" for key, value in spec.tags.items()]}
    if spec.user_data is not None:
        arguments["ex_userdata"] = spec.user_data
    return arguments


def azure_create_args(spec: base.NodeSpec) -> dict[str, Any]:
    """Azure Resource Manager tags are a mapping (`ex_tags`). User-data would be
    `ex_customdata`, but libcloud 3.9.1 cannot send it: it base64-encodes the value with
    `base64.b64encode`, which refuses a str, and then JSON-encodes the result, which refuses
    bytes. So a node needing user-data is refused here rather than created without it."""
    if spec.user_data is not None:
        raise ConfigurationError(
            "libcloud's Azure ARM driver (3.9.1) cannot send user-data (ex_customdata "
            "fails to encode): a fleet node cannot be configured there"
        )
    return {"ex_tags": dict(spec.tags)}


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


STYLES: dict[str, TagStyle] = {
    "ec2": TagStyle("ec2", ec2_create_args, _mapping_tags("tags")),
    Provider.GCE.value: TagStyle(
        "gce", gce_create_args, _mapping_tags("labels"), gce_operator_args
    ),
    Provider.OPENSTACK.value: TagStyle(
        "openstack", openstack_create_args, _mapping_tags("metadata")
    ),
    Provider.DIGITAL_OCEAN.value: TagStyle(
        "digitalocean", digitalocean_create_args, read_string_tags
    ),
    Provider.LINODE.value: TagStyle("linode", linode_create_args, read_string_tags),
    Provider.AZURE_ARM.value: TagStyle("azure_arm", azure_create_args, _mapping_tags("tags")),
    Provider.DUMMY.value: TagStyle("dummy", lambda spec: {}, _mapping_tags(DUMMY_TAGS)),
}


def tag_style(driver_class: type[NodeDriver]) -> TagStyle | None:
    """How nodes of `driver_class` are tagged; None for a driver we know no way for."""
    if issubclass(driver_class, BaseEC2NodeDriver):
        return STYLES["ec2"]
    if issubclass(driver_class, OpenStackNodeDriver):
        # The class libcloud names is a factory for a per-API-version subclass: it has no type.
        return STYLES[Provider.OPENSTACK.value]
    driver_type = getattr(driver_class, "type", None)
    return STYLES.get(str(getattr(driver_type, "value", driver_type)))


def create_dummy(
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
        DUMMY_TAGS: dict(spec.tags),
        DUMMY_USER_DATA: spec.user_data,
        DUMMY_LOCATION: None if location is None else str(location.id),
    }
    return node
