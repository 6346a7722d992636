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


class DigestMismatch(ProviderError):
    """The bytes are not the ones expected: their SHA-256 differs from the one the caller
    gave, or the vendor refused them against the checksum sent with them."""


class InvalidRecord(ProviderError):
    """A DNS zone or record the vendor cannot hold: a bad name, type, TTL or value (an A
    value that is no IPv4 address, a CNAME beside other data). Nothing was changed."""


class ConfigurationError(ProviderError):
    """A provider was named or configured wrongly; the message names the bad key."""


class InvalidWebhook(ProviderError):
    """A webhook delivery to refuse: its signature does not verify, its timestamp is too old,
    or its body is not what the vendor sends."""
