"""Sign-in limits count per account whatever the spelling of the login; sign-ups are limited
per client address. The test settings allow 5 sign-in attempts a minute per account and 20 per
address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from app.main import create_app
from app.models import Session, User
from tests.conftest import make_settings
from tests.support import SIGN_UP, STRONG_PASSWORD, GraphQLClient, sign_up_input

WRONG = "not the password at all"


def fw(text: str) -> str:
    """The full-width spelling of ASCII text (U+FF01 to U+FF5E), at-sign and dots too."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


NEW_PASSWORD = "a different horse battery staple"
# Ways to type alice's login that must all reach one account and one counter.
SPELLINGS = [
    "alice",
    "ALICE",
    fw("alice"),  # full-width username
    "alice@example.org",
    "ALICE@EXAMPLE.ORG",
    f"alice@{fw('example.org')}",  # full-width domain
    fw("alice@example.org"),  # full-width everything, at-sign too
    "Alice@Example.Org",
]
CHANGE_PASSWORD = """
mutation($input: ChangePasswordInput!) {
  changePassword(input: $input) { __typename ... on ChangePasswordError { code field } }
}"""


async def test_every_spelling_of_the_login_signs_in_to_the_one_account(gql: GraphQLClient) -> None:
    account = await gql.sign_up("alice", email="alice@example.org")

    results = [await gql.log_in(spelling) for spelling in SPELLINGS]

    assert {r["__typename"] for r in results} == {"LogInSuccess"}
    assert {r["user"]["id"] for r in results} == {account.id}


async def test_wrong_passwords_by_username_limit_the_email_and_its_spellings(
    gql: GraphQLClient,
) -> None:
    await gql.sign_up("alice", email="alice@example.org")
    for _ in range(5):
        assert (await gql.log_in("alice", WRONG))["code"] == "INVALID_CREDENTIALS"

    refused = [await gql.log_in(spelling) for spelling in SPELLINGS]  # the right password

    assert {r["code"] for r in refused} == {"RATE_LIMITED"}
    assert await Session.all().count() == 1  # only sign-up's


async def test_guesses_spread_over_spellings_share_one_counter(gql: GraphQLClient) -> None:
    await gql.sign_up("alice", email="alice@example.org")
    spread = [
        "ALICE@EXAMPLE.ORG",
        f"alice@{fw('example.org')}",
        fw("alice"),
        "Alice",
        "alice@Example.org",
    ]
    for spelling in spread:
        assert (await gql.log_in(spelling, WRONG))["code"] == "INVALID_CREDENTIALS"

    assert (await gql.log_in("alice"))["code"] == "RATE_LIMITED"
    assert await Session.all().count() == 1


async def test_unknown_logins_are_limited_like_accounts(gql: GraphQLClient) -> None:
    await gql.sign_up("alice")
    for spelling in ["nobody@example.org", "NOBODY@example.org", f"nobody@{fw('example.org')}"]:
        assert (await gql.log_in(spelling, WRONG))["code"] == "INVALID_CREDENTIALS"
    for _ in range(2):
        assert (await gql.log_in("Nobody@EXAMPLE.org", WRONG))["code"] == "INVALID_CREDENTIALS"

    unknown = await gql.log_in(f"{fw('nobody')}@example.org", WRONG)
    for _ in range(5):
        await gql.log_in("alice", WRONG)
    known = await gql.log_in("alice", WRONG)

    assert unknown == known  # the same answer: limiting does not tell which accounts exist
    assert unknown["code"] == "RATE_LIMITED"


async def test_wrong_passwords_at_sign_in_limit_change_password(gql: GraphQLClient) -> None:
    account = await gql.sign_up("alice", email="alice@example.org")
    before = (await User.get(username_key="alice")).password_hash
    for _ in range(5):
        assert (await gql.log_in(f"alice@{fw('example.org')}", WRONG))[
            "code"
        ] == "INVALID_CREDENTIALS"

    data = await gql(
        CHANGE_PASSWORD,
        {"input": {"currentPassword": STRONG_PASSWORD, "newPassword": NEW_PASSWORD}},
        token=account.access_token,
    )

    assert data["changePassword"] == {
        "__typename": "ChangePasswordError",
        "code": "RATE_LIMITED",
        "field": None,
    }
    assert (await User.get(username_key="alice")).password_hash == before


async def test_wrong_current_passwords_limit_sign_in(gql: GraphQLClient) -> None:
    account = await gql.sign_up("alice", email="alice@example.org")
    for _ in range(5):
        data = await gql(
            CHANGE_PASSWORD,
            {"input": {"currentPassword": WRONG, "newPassword": NEW_PASSWORD}},
            token=account.access_token,
        )
        assert data["changePassword"]["code"] == "WRONG_PASSWORD"

    assert (await gql.log_in("ALICE@example.org"))["code"] == "RATE_LIMITED"
    assert await Session.all().count() == 1


@pytest.mark.parametrize(
    "second", ["alice@example.org", "ALICE@EXAMPLE.ORG", fw("alice@example.org")]
)
async def test_sign_up_stores_one_spelling_of_the_email(gql: GraphQLClient, second: str) -> None:
    data = await gql(SIGN_UP, sign_up_input(email=f"alice@{fw('example.org')}"))
    assert data["signUp"]["__typename"] == "SignUpSuccess"

    again = await gql(SIGN_UP, sign_up_input(username="alice2", email=second))

    assert again["signUp"]["code"] == "EMAIL_TAKEN"
    assert await User.all().values_list("email", flat=True) == ["alice@example.org"]


# --- sign-ups per client address -----------------------------------------------------------


@pytest.fixture
def tight_app(app: Starlette, data_dir: Path, database_url: str) -> Starlette:
    """An app allowing 2 sign-ups an hour per address, on the test database."""
    settings = make_settings(
        data_dir,
        database_url,
        auth={"signups_per_ip": "2/hour"},
        graphql={"requests_per_viewer": "1000/minute"},
    )
    return create_app(settings)


@pytest.fixture
async def clients(tight_app: Starlette) -> AsyncIterator[tuple[GraphQLClient, GraphQLClient]]:
    """Two clients of the tight app at different addresses."""
    made = []
    for address in ("198.51.100.1", "198.51.100.2"):
        transport = httpx.ASGITransport(app=tight_app, client=(address, 40_000))
        made.append(httpx.AsyncClient(transport=transport, base_url="http://testserver"))
    try:
        yield GraphQLClient(made[0]), GraphQLClient(made[1])
    finally:
        for client in made:
            await client.aclose()
        await tight_app.state.services.limiter.close()


async def test_sign_ups_are_limited_per_address(
    clients: tuple[GraphQLClient, GraphQLClient],
) -> None:
    first, second = clients
    await first.sign_up("alice")
    await first.sign_up("bob")

    refused = await first(SIGN_UP, sign_up_input(username="carol", email="carol@example.org"))

    assert refused["signUp"] == {
        "__typename": "SignUpError",
        "code": "RATE_LIMITED",
        "message": "Too many sign-ups; try again later.",
        "field": None,
    }
    assert not await User.exists(username_key="carol")
    await second.sign_up("carol")  # another address has its own count
    assert await User.all().count() == 3


async def test_malformed_sign_ups_are_not_counted_but_probes_are(
    clients: tuple[GraphQLClient, GraphQLClient],
) -> None:
    first, _ = clients
    for _ in range(3):
        weak = await first(SIGN_UP, sign_up_input(password="password"))
        assert weak["signUp"]["code"] == "WEAK_PASSWORD"
    await first.sign_up("alice")
    taken = await first(SIGN_UP, sign_up_input(email="other@example.org"))
    assert taken["signUp"]["code"] == "USERNAME_TAKEN"

    refused = await first(SIGN_UP, sign_up_input(username="bob", email="bob@example.org"))

    assert refused["signUp"]["code"] == "RATE_LIMITED"
    assert await User.all().values_list("username", flat=True) == ["alice"]
