"""Provider name -> implementation, for built-ins and for third-party packages.

Built-ins are named here as "module:Class" strings and imported only when configured (so a
deployment on local disk never imports boto3). Other packages add providers through the
entry-point group `holdfast.providers.<kind>`, e.g. in their pyproject.toml:

    [project.entry-points."holdfast.providers.storage"]
    hetzner = "holdfast_hetzner:HetznerStorage"

Every provider class declares its options as a pydantic model `Options` (unknown keys
forbidden) and takes an instance of it: `load` validates the configured mapping against it,
so a misspelt option stops start-up with the key named.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from providers.errors import ConfigurationError

BUILTINS: dict[str, dict[str, str]] = {
    "storage": {
        "local": "providers.storage.local:LocalStorage",
        "s3": "providers.storage.s3:S3Storage",
        "libcloud": "providers.storage.libcloud:LibcloudStorage",
    },
    "payments": {
        "stripe": "providers.payments.stripe:StripePayments",
        "btcpay": "providers.payments.btcpay:BTCPayPayments",
        "manual": "providers.payments.manual:ManualPayments",
    },
    "compute": {
        "libcloud": "providers.compute.libcloud:LibcloudCompute",
    },
    "dns": {
        "libcloud": "providers.dns.libcloud:LibcloudDNS",
    },
}

ENTRY_POINT_GROUP = "holdfast.providers.{kind}"


def names(kind: str) -> list[str]:
    """Every provider name of `kind`: the built-ins and those installed packages add."""
    found = set(BUILTINS.get(kind, {}))
    found.update(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP.format(kind=kind)))
    return sorted(found)


def provider_class(kind: str, name: str) -> type[Any]:
    """The class registered for `name` of `kind`; ConfigurationError naming it if none is."""
    target = BUILTINS.get(kind, {}).get(name)
    try:
        if target is not None:
            module_name, _, attribute = target.partition(":")
            cls = getattr(importlib.import_module(module_name), attribute)
        else:
            for ep in entry_points(group=ENTRY_POINT_GROUP.format(kind=kind), name=name):
                target = ep.value
                cls = ep.load()
                break
            else:
                known = ", ".join(names(kind)) or "none"
                raise ConfigurationError(f"unknown {kind} provider {name!r} (known: {known})")
    except (ImportError, AttributeError) as exc:
        # A missing SDK or a broken plug-in package: name the provider, keep the cause.
        raise ConfigurationError(
            f"{kind} provider {name!r} ({target}) cannot be loaded: {exc}"
        ) from exc
    options = getattr(cls, "Options", None)
    if not (isinstance(options, type) and issubclass(options, BaseModel)):
        raise ConfigurationError(f"{kind} provider {name!r} ({target}) has no pydantic Options")
    return cls  # type: ignore[no-any-return]


def load(kind: str, name: str, options: Mapping[str, Any], *, where: str = "") -> Any:
    """An instance of provider `name` of `kind` configured with `options`.

    `where` prefixes the keys named in errors (e.g. `storage.backends.media.options`), so
    the message points at the setting to fix.
    """
    cls = provider_class(kind, name)
    return cls(parse_options(kind, name, options, where=where))


class Configured(Protocol):
    """A named configuration of a provider: its registry name and options."""

    @property
    def provider(self) -> str: ...
    @property
    def options(self) -> Mapping[str, Any]: ...


def load_each(kind: str, configured: Mapping[str, Configured], *, where: str) -> dict[str, Any]:
    """An instance of each named configuration of `kind` (`where`: the settings key holding
    them, e.g. `payments.providers`, for the keys named in errors)."""
    return {
        name: load(kind, config.provider, config.options, where=f"{where}.{name}.options")
        for name, config in configured.items()
    }


def parse_options(
    kind: str, name: str, options: Mapping[str, Any], *, where: str = ""
) -> BaseModel:
    """`options` checked against provider `name`'s `Options`, without making the provider
    (nothing is connected or created): ConfigurationError naming each bad key."""
    cls = provider_class(kind, name)
    options_model: type[BaseModel] = cls.Options
    try:
        parsed = options_model.model_validate(dict(options))
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"])
            problems.append(f"{where + '.' if where else ''}{key}: {error['msg']}")
        raise ConfigurationError(
            f"invalid options for {kind} provider {name!r}: " + "; ".join(problems)
        ) from None
    return parsed
