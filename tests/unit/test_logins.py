"""One spelling of every login: sign-up stores it, sign-in looks it up and counts under it."""

from __future__ import annotations

import pytest

from app.errors import DomainError, ErrorCode
from app.ratelimit import client_key
from app.services.accounts import login_key, normalise_email, username_key


def fw(text: str) -> str:
    """The full-width spelling of ASCII text (U+FF01 to U+FF5E)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@pytest.mark.parametrize(
    "spelling",
    [
        "alice@example.org",
        " Alice@Example.ORG ",
        f"alice@{fw('example.org')}",
        fw("ALICE@EXAMPLE.ORG"),
        "alice@example\u3002org",  # ideographic full stop
        "alice\ufe6bexample.org",  # small commercial at
    ],
)
def test_email_spellings_are_one(spelling: str) -> None:
    assert normalise_email(spelling) == "alice@example.org"
    assert login_key(spelling) == "alice@example.org"


@pytest.mark.parametrize("spelling", ["alice", "ALICE", fw("alice"), fw("Alice"), " alice "])
def test_username_spellings_are_one(spelling: str) -> None:
    assert login_key(spelling) == username_key(spelling) == "alice"


@pytest.mark.parametrize(
    "email",
    [
        "Stra\u00dfe@B\u00fccher.DE",
        "alice@xn--bcher-kva.de",
        "\u0130stanbul@example.org",
        "\u212aelvin@example.org",  # Kelvin sign
        "\ufb01le@example.org",  # the fi ligature
    ],
)
def test_normalising_twice_changes_nothing(email: str) -> None:
    once = normalise_email(email)

    assert normalise_email(once) == once
    assert login_key(once) == once
    assert once == once.casefold()


def test_idna_domains_are_one_spelling() -> None:
    assert normalise_email("a@xn--bcher-kva.de") == normalise_email("A@B\u00dcCHER.de")


def test_a_bad_email_is_refused_at_sign_up_but_still_has_a_login_key() -> None:
    with pytest.raises(DomainError) as refused:
        normalise_email("alice@@example.org")

    assert refused.value.code is ErrorCode.INVALID_EMAIL
    assert login_key(fw("ALICE@@example.org")) == "alice@@example.org"


def test_per_address_limits_count_an_ipv6_network_as_one_address() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:ffff::9")
    assert client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:203.0.113.7") == client_key("203.0.113.7") == "203.0.113.7"
    assert client_key("203.0.113.8") != client_key("203.0.113.7")
    assert client_key("not an address") == "not an address"
    # IPv4 clients behind NAT64 or 6to4 are counted as themselves, not as one /64.
    assert client_key("64:ff9b::cb00:7107") == "203.0.113.7"
    assert client_key("64:ff9b::cb00:7108") == "203.0.113.8"
    assert client_key("2002:cb00:7107::1") == "203.0.113.7"
