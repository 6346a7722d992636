"""A package can add a compute vendor libcloud lacks (e.g. Hetzner Cloud) through the entry
point group `holdfast.providers.compute`, and configuration selects it by name."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.settings import SettingsError, load_settings
from providers import registry
from providers.compute.base import ComputeProvider, NodeSpec
from providers.compute.libcloud import LibcloudCompute
from providers.errors import ConfigurationError

PLUGIN = """
from pydantic import BaseModel, ConfigDict, SecretStr

from providers.compute.base import Node, NodeState


class CloudCompute:
    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        token: SecretStr

    def __init__(self, options):
        self.options = options
        self.nodes = {}

    async def list_sizes(self, location=None):
        return []

    async def list_images(self, ids=None):
        return []

    async def list_locations(self):
        return []

    async def create_node(self, spec):
        node = Node(str(len(self.nodes) + 1), spec.name, NodeState.RUNNING, tags=spec.tags)
        self.nodes[node.id] = node
        return node

    async def list_nodes(self, tags=None):
        return [n for n in self.nodes.values()
                if all(n.tags.get(k) == v for k, v in (tags or {}).items())]

    async def get_node(self, node_id):
        return self.nodes[node_id]

    async def reboot_node(self, node_id):
        pass

    async def destroy_node(self, node_id):
        self.nodes.pop(node_id, None)

    async def close(self):
        pass
"""


@pytest.fixture
def plugin_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An installed distribution (a dist-info on sys.path) adding a compute provider."""
    (tmp_path / "holdfast_plugin_compute.py").write_text(PLUGIN)
    dist_info = tmp_path / "holdfast_plugin_compute-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: holdfast-plugin-compute\nVersion: 1.0\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "[holdfast.providers.compute]\ncloud = holdfast_plugin_compute:CloudCompute\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("holdfast_plugin_compute", None)


def test_builtin_libcloud_is_registered() -> None:
    assert "libcloud" in registry.names("compute")
    provider = registry.load("compute", "libcloud", {"driver": "dummy"})
    assert isinstance(provider, LibcloudCompute)
    assert isinstance(provider, ComputeProvider)


@pytest.mark.usefixtures("plugin_package")
async def test_a_package_adds_a_compute_provider() -> None:
    assert registry.names("compute") == ["cloud", "libcloud"]
    provider = registry.load("compute", "cloud", {"token": "secret-token"})
    assert isinstance(provider, ComputeProvider)
    node = await provider.create_node(NodeSpec("n", "s", "i", tags={"holdfast-role": "web"}))
    assert await provider.list_nodes({"holdfast-role": "web"}) == [node]
    with pytest.raises(ConfigurationError, match=r"compute\.token"):
        registry.load("compute", "cloud", {}, where="compute")


@pytest.mark.usefixtures("plugin_package")
def test_settings_select_it_by_name(monkeypatch_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    roles = {"scheduler": {"count": 1, "size": "cx22", "image": "debian-12"}}
    settings = load_settings(
        data_dir=tmp_path,
        compute={
            "providers": {
                "hetzner": {"provider": "cloud", "options": {"token": "t"}, "roles": roles}
            },
            "active": "hetzner",
        },
    )
    assert settings.compute.providers["hetzner"].provider == "cloud"
    with pytest.raises(SettingsError, match=r"compute\.providers\.hetzner"):
        load_settings(
            data_dir=tmp_path,
            compute={"providers": {"hetzner": {"provider": "cloud", "options": {"tokn": "t"}}}},
        )
