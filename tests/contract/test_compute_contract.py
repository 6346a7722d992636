"""The compute contract: every `ComputeProvider` passes these same cases against a real
backend (moto's EC2 server through libcloud's EC2 driver, libcloud's dummy driver), so that
switching hosting vendors by configuration is proven rather than hoped for."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
from libcloud.compute.providers import get_driver

from providers import registry
from providers.compute.base import ComputeProvider, NodeSpec, NodeState
from providers.compute.libcloud import LibcloudCompute
from providers.compute.libcloud.drivers import create_node_arguments
from providers.compute.libcloud.tags import (
    digitalocean_create_args,
    gce_create_args,
    merge_arguments,
    read_string_tags,
    tag_style,
)
from providers.errors import ConfigurationError, NotFound, Unavailable
from tests.compute import (
    COMPUTE_BACKENDS,
    MOTO_NAMESPACE,
    ComputeHarness,
    ec2_options,
    environment,
    harness_for,
)
from tests.servers import MotoServer, start_moto_server

TAGS = {"holdfast-fleet": "contract", "holdfast-compute": "here", "holdfast-role": "web"}
USER_DATA = "#cloud-config\nruncmd:\n  - [echo, s3cr3t-database-password]\n"
"""User-data carries credentials: it must reach the vendor and stay out of reprs (logs)."""


@pytest.fixture(params=COMPUTE_BACKENDS)
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[ComputeHarness]:
    harness = harness_for(request.param, request)
    try:
        yield harness
    finally:
        await harness.close()


def spec(harness: ComputeHarness, name: str = "contract-web-0", **changes: object) -> NodeSpec:
    values: dict[str, object] = {
        "name": name,
        "size": harness.size,
        "image": harness.image,
        "location": harness.location,
        "user_data": USER_DATA,
        "tags": {**TAGS, "holdfast-index": name.rsplit("-", 1)[-1]},
    }
    values.update(changes)
    return NodeSpec(**values)  # type: ignore[arg-type]


async def test_is_a_compute_provider(harness: ComputeHarness) -> None:
    assert isinstance(harness.provider, ComputeProvider)


async def test_lists_sizes_images_and_locations(harness: ComputeHarness) -> None:
    provider = harness.provider
    sizes = await provider.list_sizes()
    assert harness.size in {size.id for size in sizes}
    assert all(size.name for size in sizes)
    in_location = await provider.list_sizes(harness.location)
    assert harness.size in {size.id for size in in_location}
    locations = await provider.list_locations()
    assert harness.location in {location.id for location in locations}


async def test_list_images_filters_by_id(harness: ComputeHarness) -> None:
    provider = harness.provider
    images = await provider.list_images([harness.image])
    assert [image.id for image in images] == [harness.image]
    both = await provider.list_images([harness.image, harness.other_image])
    assert {image.id for image in both} == {harness.image, harness.other_image}
    assert await provider.list_images([]) == []
    # An unknown id among known ones drops out; it never fails the whole listing.
    some = await provider.list_images([harness.image, "ami-00000000"])
    assert [image.id for image in some] == [harness.image]


async def test_creates_a_tagged_node_with_user_data(harness: ComputeHarness) -> None:
    provider = harness.provider
    node = await provider.create_node(spec(harness))
    assert node.name == "contract-web-0"
    assert node.state in (NodeState.PENDING, NodeState.RUNNING)
    assert {key: node.tags.get(key) for key in TAGS} == TAGS
    assert node.tags["holdfast-index"] == "0"
    assert await harness.user_data(node.id) == USER_DATA
    assert "s3cr3t" not in repr(node)
    assert "s3cr3t" not in repr(spec(harness))

    fetched = await provider.get_node(node.id)
    assert fetched.id == node.id
    assert fetched.name == "contract-web-0"
    assert fetched.tags["holdfast-role"] == "web"
    assert fetched.size == harness.size
    assert fetched.image == harness.image
    assert fetched.location == harness.location


async def test_lists_only_nodes_carrying_every_tag(harness: ComputeHarness) -> None:
    provider = harness.provider
    ours = await provider.create_node(spec(harness))
    untagged = await harness.foreign_node()
    # Another deployment's node: one of our tags, but not all of them.
    half = await harness.foreign_node({"holdfast-fleet": "contract", "holdfast-role": "web"})

    listed = await provider.list_nodes(TAGS)
    assert [node.id for node in listed] == [ours.id]
    everything = {node.id for node in await provider.list_nodes()}
    assert {ours.id, untagged, half} <= everything
    assert await provider.list_nodes({**TAGS, "holdfast-role": "worker"}) == []


async def test_reboot_and_destroy(harness: ComputeHarness) -> None:
    provider = harness.provider
    node = await provider.create_node(spec(harness))
    keep = await provider.create_node(spec(harness, "contract-web-1"))
    await provider.reboot_node(node.id)
    assert (await provider.get_node(node.id)).state in (
        NodeState.REBOOTING,
        NodeState.RUNNING,
        NodeState.PENDING,
    )

    await provider.destroy_node(node.id)
    with pytest.raises(NotFound):
        await provider.get_node(node.id)
    assert [n.id for n in await provider.list_nodes(TAGS)] == [keep.id]
    await provider.destroy_node(node.id)  # idempotent
    with pytest.raises(NotFound):
        await provider.reboot_node(node.id)
    assert [n.id for n in await provider.list_nodes(TAGS)] == [keep.id]


async def test_unknown_node_image_size_and_location_are_not_found(
    harness: ComputeHarness,
) -> None:
    provider = harness.provider
    unknown = "i-0123456789abcdef0" if harness.moto else "dummy-nothing"
    with pytest.raises(NotFound):
        await provider.get_node(unknown)
    with pytest.raises(NotFound):
        await provider.reboot_node(unknown)
    await provider.destroy_node(unknown)  # nothing to do: not an error

    with pytest.raises(NotFound, match="image"):
        await provider.create_node(spec(harness, image="ami-00000000"))
    with pytest.raises(NotFound, match="size"):
        await provider.create_node(spec(harness, size="no-such-size"))
    with pytest.raises(NotFound, match="location"):
        await provider.create_node(spec(harness, location="no-such-place"))
    assert await provider.list_nodes(TAGS) == []


# -- configuration ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def authenticating_moto() -> Iterator[MotoServer]:
    """A moto server that checks credentials against its IAM (none exist: all refused)."""
    with environment(INITIAL_NO_AUTH_ACTION_COUNT="0"), start_moto_server() as server:
        yield server


async def test_refused_credentials_are_configuration_errors(
    authenticating_moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("libcloud.compute.drivers.ec2.NAMESPACE", MOTO_NAMESPACE)
    provider = registry.load(
        "compute", "libcloud", ec2_options(authenticating_moto.port, secret="hunter2-secret")
    )
    try:
        with pytest.raises(ConfigurationError, match="credentials refused") as caught:
            await provider.list_nodes(TAGS)
        assert "hunter2" not in str(caught.value)
        with pytest.raises(ConfigurationError):
            await provider.list_locations()
    finally:
        await provider.close()


async def test_unreachable_endpoint_is_unavailable(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A vendor's API that cannot be reached (here, a closed port; the dummy driver has no
    endpoint) is Unavailable: a retry later may succeed."""
    monkeypatch.setattr("libcloud.compute.drivers.ec2.NAMESPACE", MOTO_NAMESPACE)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the calls: nothing listens
    provider = registry.load("compute", "libcloud", ec2_options(port, timeout=2))
    node = NodeSpec("n-web-0", "t2.micro", "ami-1e749f67", tags=TAGS)
    try:
        with pytest.raises(Unavailable):
            await provider.list_nodes(TAGS)
        with pytest.raises(Unavailable):
            await provider.create_node(node)
        with pytest.raises(Unavailable):
            await provider.destroy_node("i-0123456789abcdef0")
    finally:
        await provider.close()


async def test_bad_options_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match=r"compute\.driver"):
        registry.load("compute", "libcloud", {"driver": "no-such-cloud"}, where="compute")
    with pytest.raises(ConfigurationError, match=r"compute\.colour"):
        registry.load("compute", "libcloud", {"driver": "dummy", "colour": 1}, where="compute")
    # Options only the driver can judge fail its first call (drivers are made in a worker
    # thread: some reach their vendor as they are made).
    provider = registry.load("compute", "libcloud", ec2_options(1, region="mars-north-1"))
    with pytest.raises(ConfigurationError, match="refused its options"):
        await provider.list_nodes()
    # A driver we know no tags for is refused, never run without a way to tell ours apart.
    with pytest.raises(ConfigurationError, match="no known way to tag"):
        registry.load("compute", "libcloud", {"driver": "vultr", "key": "k"})


def test_driver_names_in_either_spelling() -> None:
    for name in ("digital_ocean", "DIGITAL_OCEAN", "digitalocean"):
        options = LibcloudCompute.Options(driver=name, key="token")  # type: ignore[arg-type]
        assert options.driver == "digitalocean"
    assert "token" not in repr(LibcloudCompute.Options(driver="ec2", key="token"))  # type: ignore[arg-type]


def test_tags_and_user_data_for_drivers_without_a_local_server() -> None:
    """GCE and DigitalOcean have no local server here: what we hand their drivers, and how
    their tags read back."""
    node = NodeSpec("n", "s", "i", tags={"holdfast-role": "web"}, user_data=USER_DATA)
    assert gce_create_args(node) == {
        "ex_labels": {"holdfast-role": "web"},
        "ex_metadata": {"user-data": USER_DATA},
    }
    assert digitalocean_create_args(node) == {
        "ex_create_attr": {"tags": ["holdfast-role:web"]},
        "ex_user_data": USER_DATA,
    }
    assert read_string_tags({"tags": ["holdfast-role:web", "env:prod:eu", "plain"]}) == {
        "holdfast-role": "web",
        "env": "prod:eu",
    }
    # libcloud's OpenStack class is a factory for per-version subclasses and has no type.
    openstack = tag_style(get_driver("openstack"))
    assert openstack is not None
    assert openstack.name == "openstack"
    options = LibcloudCompute.Options(driver="openstack", key="u", secret="p")  # type: ignore[arg-type]
    assert options.driver == "openstack"


def test_tags_and_user_data_for_linode_and_azure() -> None:
    """Linode and Azure ARM have no local server here: what we hand their drivers (their
    create_node keyword names as libcloud 3.9.1 spells them), and how their tags read back."""
    node = NodeSpec("n", "s", "i", tags={"holdfast-role": "web"}, user_data=USER_DATA)
    linode = tag_style(get_driver("linode"))
    azure = tag_style(get_driver("azure_arm"))
    assert linode is not None
    assert azure is not None
    assert linode.create_args(node) == {"ex_tags": ["holdfast-role:web"], "ex_userdata": USER_DATA}
    assert linode.read_tags({"tags": ["holdfast-role:web", "other"]}) == {"holdfast-role": "web"}
    untouched = NodeSpec("n", "s", "i", tags={"holdfast-role": "web"})
    assert azure.create_args(untouched) == {"ex_tags": {"holdfast-role": "web"}}
    assert azure.read_tags({"tags": {"holdfast-role": "web"}}) == {"holdfast-role": "web"}
    # libcloud 3.9.1's Azure driver cannot encode custom data: refused, not dropped.
    with pytest.raises(ConfigurationError, match="user-data"):
        azure.create_args(node)
    linode_arguments = create_node_arguments(get_driver("linode"))
    azure_arguments = create_node_arguments(get_driver("azure_arm"))
    assert linode_arguments is not None
    assert {"ex_tags", "ex_userdata"} <= linode_arguments
    assert azure_arguments is not None
    assert {"ex_tags", "ex_customdata"} <= azure_arguments


def test_create_options_merge_with_ours() -> None:
    """An operator's tags beside ours survive; ours win on a key both set."""
    ours = digitalocean_create_args(NodeSpec("n", "s", "i", tags={"holdfast-role": "web"}))
    merged = merge_arguments({"ex_create_attr": {"tags": ["env:prod"], "vpc_uuid": "v"}}, ours)
    assert merged["ex_create_attr"] == {"tags": ["env:prod", "holdfast-role:web"], "vpc_uuid": "v"}
    gce = gce_create_args(NodeSpec("n", "s", "i", user_data="ud"))
    merged = merge_arguments({"ex_metadata": {"ssh-keys": "k", "user-data": "theirs"}}, gce)
    assert merged["ex_metadata"] == {"ssh-keys": "k", "user-data": "ud"}
    # GCE's item forms are flattened first, so ours merge into them.
    style = tag_style(get_driver("gce"))
    assert style is not None
    for form in (
        {"items": [{"key": "ssh-keys", "value": "k"}]},
        [{"key": "ssh-keys", "value": "k"}],
        [{"ssh-keys": "k"}],
        {"key": "ssh-keys", "value": "k"},
    ):
        operator = style.operator_args({"ex_metadata": form})
        assert merge_arguments(operator, gce)["ex_metadata"] == {"ssh-keys": "k", "user-data": "ud"}
    with pytest.raises(ConfigurationError, match="ex_metadata"):
        style.operator_args({"ex_metadata": ["ssh-keys"]})


async def test_an_operator_tag_survives_ours(harness: ComputeHarness) -> None:
    if harness.moto is None:
        pytest.skip("the dummy driver takes no create_options")
    provider = harness.open(
        create_options={"ex_metadata": {"team": "ops", "holdfast-role": "theirs"}}
    )
    node = await provider.create_node(spec(harness))
    assert node.tags["team"] == "ops"
    assert node.tags["holdfast-role"] == "web"
    assert (await provider.get_node(node.id)).tags["team"] == "ops"


def test_unknown_create_options_are_refused_with_the_settings() -> None:
    with pytest.raises(ConfigurationError, match=r"create_options\.ex_kyname"):
        registry.load(
            "compute",
            "libcloud",
            ec2_options(1, create_options={"ex_kyname": "k"}),
            where="compute",
        )
    with pytest.raises(ConfigurationError, match=r"create_options\.name"):
        registry.load("compute", "libcloud", ec2_options(1, create_options={"name": "x"}))
    ok = registry.load("compute", "libcloud", ec2_options(1, create_options={"ex_keyname": "k"}))
    assert ok.options.create_options == {"ex_keyname": "k"}
    # Linode picks its API version's class when made: any version's argument passes.
    keys = {"ex_authorized_keys": ["ssh-ed25519 AAAA"]}
    registry.load("compute", "libcloud", {"driver": "linode", "key": "k", "create_options": keys})
    with pytest.raises(ConfigurationError, match=r"create_options\.ex_nope"):
        registry.load(
            "compute",
            "libcloud",
            {"driver": "linode", "key": "k", "create_options": {"ex_nope": 1}},
        )


async def test_a_node_whose_tags_did_not_stick_is_destroyed() -> None:
    """A vendor dropping our tags (a rule of its own) would leave a node we never list: it
    is destroyed at once and the configuration refused."""
    provider: LibcloudCompute = registry.load("compute", "libcloud", {"driver": "dummy"})
    provider._style = dataclasses.replace(provider._style, read_tags=lambda extra: {})
    before = {node.id for node in provider._driver().list_nodes()}
    with pytest.raises(ConfigurationError, match="did not keep our tags"):
        await provider.create_node(
            NodeSpec("n-web-0", "1", "1", tags={"holdfast-role": "web"}, location="2")
        )
    assert {node.id for node in provider._driver().list_nodes()} == before
