"""providers.registry: providers chosen by name, options validated, plug-ins by entry point."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from providers import registry
from providers.errors import ConfigurationError
from providers.storage.local import LocalStorage

PLUGIN = """
from pydantic import BaseModel, ConfigDict


class PluginStorage:
    kind = "plugin"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        colour: str

    def __init__(self, options):
        self.options = options


class NoOptions:
    pass
"""


@pytest.fixture
def plugin_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An installed distribution (a dist-info on sys.path) adding two storage providers."""
    (tmp_path / "holdfast_plugin_storage.py").write_text(PLUGIN)
    dist_info = tmp_path / "holdfast_plugin_storage-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: holdfast-plugin-storage\nVersion: 1.0\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "[holdfast.providers.storage]\n"
        "plugin = holdfast_plugin_storage:PluginStorage\n"
        "optionless = holdfast_plugin_storage:NoOptions\n"
        "broken = holdfast_plugin_missing:Storage\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("holdfast_plugin_storage", None)


def test_builtin_is_loaded_with_its_options(tmp_path: Path) -> None:
    storage = registry.load("storage", "local", {"root": str(tmp_path / "media")})
    assert isinstance(storage, LocalStorage)
    assert storage.root == (tmp_path / "media").resolve()


def test_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError) as caught:
        registry.load("storage", "floppy", {})
    message = str(caught.value)
    assert "'floppy'" in message
    assert "libcloud, local, s3" in message


def test_unknown_option_is_named_with_where(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        registry.load(
            "storage",
            "local",
            {"root": str(tmp_path), "rooot": "typo"},
            where="storage.backends.media.options",
        )
    assert "storage.backends.media.options.rooot" in str(caught.value)


def test_missing_and_invalid_options_are_named() -> None:
    with pytest.raises(ConfigurationError) as caught:
        registry.load("storage", "s3", {"part_size": 1024}, where="storage.options")
    message = str(caught.value)
    assert "storage.options.bucket" in message
    assert "storage.options.part_size" in message


def test_unknown_libcloud_driver_is_named() -> None:
    with pytest.raises(ConfigurationError) as caught:
        registry.load(
            "storage",
            "libcloud",
            {"driver": "NOT_A_DRIVER", "container": "c", "key": "k"},
            where="storage",
        )
    assert "storage.driver" in str(caught.value)


def test_secrets_stay_out_of_errors() -> None:
    with pytest.raises(ConfigurationError) as caught:
        registry.load(
            "storage",
            "s3",
            {"bucket": "b", "secret_access_key": "hunter2-secret", "region": 5},
        )
    assert "hunter2" not in str(caught.value)


@pytest.mark.usefixtures("plugin_package")
def test_entry_point_provider_is_loaded() -> None:
    assert "plugin" in registry.names("storage")
    storage = registry.load("storage", "plugin", {"colour": "teal"})
    assert type(storage).__name__ == "PluginStorage"
    assert storage.options.colour == "teal"
    with pytest.raises(ConfigurationError) as caught:
        registry.load("storage", "plugin", {"color": "teal"}, where="storage")
    assert "storage.color" in str(caught.value)


@pytest.mark.usefixtures("plugin_package")
def test_broken_entry_points_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="'broken'"):
        registry.load("storage", "broken", {})
    with pytest.raises(ConfigurationError, match="no pydantic Options"):
        registry.load("storage", "optionless", {})
