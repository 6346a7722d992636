"""The only exceptions a provider may raise across its interface."""

from __future__ import annotations


class ProviderError(Exception):
    """A vendor call failed; the message never contains secrets."""


class NotFound(ProviderError):
    """The vendor has no such object."""


class Declined(ProviderError):
    """The vendor refused the operation (a card declined, a quota reached)."""


class Unavailable(ProviderError):
    """The vendor could not be reached or answered with a transient failure; retry later."""


class InvalidKey(ProviderError):
    """The key is not one this provider stores: empty, too long, a NUL, or one that would
    escape its root (`..`, an absolute path)."""


class ConfigurationError(ProviderError):
    """A provider was named or configured wrongly; the message names the bad key."""
