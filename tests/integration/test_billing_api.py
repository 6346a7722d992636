"""Premium subscriptions over GraphQL, the payments CLI and the webhook route, on an app with
manual payment configurations (`bank`, `transfer`; `cash` takes no newcomers) and one plan.
The clock is moved by rewriting a subscription's period and its timers in the database."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from strawberry import relay

from app.main import create_app
from app.models import (
    Job,
    JobState,
    Payment,
    PaymentEventRecord,
    PaymentStatus,
    Plan,
    Role,
    Subscription,
    SubscriptionStatus,
    User,
)
from app.services import Services
from app.services.billing_ledger import PERIOD_END, RENEW, add_interval
from app.settings import Settings
from tests.conftest import make_settings
from tests.support import HOLDFAST, Account, GraphQLClient, holdfast_env

GRACE = timedelta(days=7)
LEAD = timedelta(days=3)
PAYMENTS: dict[str, Any] = {
    "providers": {
        "bank": {"provider": "manual", "options": {"instructions": "IBAN XX00 HOLD FAST."}},
        "transfer": {"provider": "manual", "options": {"instructions": "Wire to account 42."}},
        "cash": {
            "provider": "manual",
            "options": {"instructions": "At the desk."},
            "accept_new": False,
        },
    },
    "plans": {
        "supporter": {
            "name": "Supporter",
            "description": "Keeps the lights on.",
            "prices": {"eur": 500, "usd": 600},
            "perks": {"max_post_length": 5000},
        }
    },
    "grace_days": 7,
    "renewal_lead_days": 3,
}

SUB = """id provider status currentPeriodStart currentPeriodEnd accessUntil cancelAtPeriodEnd
inGracePeriod complimentary plan { id code }
actionRequired { kind provider message }
pendingPayment { kind paymentId amount currency clientSecret url instructions }"""
VIEWER = f"{{ viewer {{ id isPremium subscription {{ {SUB} }} }} }}"
SUBSCRIBE = f"""mutation($input: SubscribeInput!) {{ subscribe(input: $input) {{
  __typename
  ... on SubscribeSuccess {{
    subscription {{ {SUB} }} nextAction {{ kind paymentId instructions }} }}
  ... on SubscribeError {{ code message field }} }} }}"""


def _mutation(name: str, input_type: str | None) -> str:
    title = name[0].upper() + name[1:]
    args = "(input: $input)" if input_type else ""
    head = f"mutation($input: {input_type}!)" if input_type else "mutation"
    return f"""{head} {{ {name}{args} {{ __typename
  ... on {title}Success {{ subscription {{ {SUB} }} }}
  ... on {title}Error {{ code message field }} }} }}"""


CANCEL = _mutation("cancelSubscription", "CancelSubscriptionInput")
RESUME = _mutation("resumeSubscription", None)
GRANT = _mutation("grantComplimentary", "GrantComplimentaryInput")
CONFIRM = _mutation("confirmManualPayment", "ConfirmManualPaymentInput")
SUBSCRIBERS = """query($first: Int, $after: String, $status: SubscriptionStatus) {
  subscribers(first: $first, after: $after, status: $status) {
    edges { cursor node { id status provider user { username } } }
    pageInfo { hasNextPage endCursor } } }"""


@pytest.fixture
async def pay_app(app: Starlette, data_dir: Path, database_url: str) -> AsyncIterator[Starlette]:
    """An app with payments configured, on the test database (the shared app's lifespan
    holds it open); its plans in the ledger as its own lifespan would put them."""
    settings = make_settings(data_dir, database_url, payments=PAYMENTS)
    application = create_app(settings)
    services: Services = application.state.services
    await services.billing.ensure_plans()
    yield application
    await services.limiter.close()
    await services.payments.close()


@pytest.fixture
async def pay(pay_app: Starlette) -> AsyncIterator[GraphQLClient]:
    transport = httpx.ASGITransport(app=pay_app, client=("203.0.113.9", 50_000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield GraphQLClient.settling(http, pay_app)


def services_of(app: Starlette) -> Services:
    services: Services = app.state.services
    return services


async def admin(gql: GraphQLClient, username: str = "boss") -> Account:
    account = await gql.sign_up(username)
    await User.filter(username_key=username).update(role=Role.ADMIN)
    return account


async def plan_id(gql: GraphQLClient) -> str:
    data = await gql("{ plans { id } }")
    value: str = data["plans"][0]["id"]
    return value


async def subscribe(
    gql: GraphQLClient, account: Account, provider: str = "bank", **extra: Any
) -> dict[str, Any]:
    values = {"planId": await plan_id(gql), "provider": provider, **extra}
    data = await gql(SUBSCRIBE, {"input": values}, token=account.access_token)
    result: dict[str, Any] = data["subscribe"]
    return result


async def run(gql: GraphQLClient, document: str, account: Account, **values: Any) -> Any:
    data = await gql(document, {"input": values} if values else None, token=account.access_token)
    return next(iter(data.values()))


async def viewer(gql: GraphQLClient, account: Account) -> dict[str, Any]:
    data = await gql(VIEWER, token=account.access_token)
    result: dict[str, Any] = data["viewer"]
    return result


async def subscribed_and_paid(
    gql: GraphQLClient, account: Account, boss: Account, provider: str = "bank"
) -> dict[str, Any]:
    started = await subscribe(gql, account, provider)
    assert started["__typename"] == "SubscribeSuccess", started
    payment = started["subscription"]["pendingPayment"]["paymentId"]
    confirmed = await run(gql, CONFIRM, boss, paymentId=payment)
    assert confirmed["__typename"] == "ConfirmManualPaymentSuccess", confirmed
    sub: dict[str, Any] = confirmed["subscription"]
    return sub


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def db_id(global_id: str) -> int:
    return int(relay.GlobalID.from_id(global_id).node_id)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def move_period_end(sub_id: int, end: datetime) -> None:
    """Pretend the clock moved: the subscription's current period ends at `end` (its access
    and its pending timers with it, as the ledger would have set them)."""
    sub = await Subscription.get(id=sub_id)
    old = _iso(sub.current_period_end)
    await Subscription.filter(id=sub_id).update(
        current_period_start=end - timedelta(days=30),
        current_period_end=end,
        access_until=end if sub.cancel_at_period_end else end + GRACE,
    )
    new = _iso((await Subscription.get(id=sub_id)).current_period_end)
    for job in await Job.filter(state=JobState.PENDING, name__in=[RENEW, PERIOD_END]):
        payload = dict(job.payload)
        if payload.get("subscription") == sub_id and payload.get("period_end") == old:
            payload["period_end"] = new
            run_after = end - LEAD if job.name == RENEW else end
            await Job.filter(id=job.id).update(payload=payload, run_after=run_after)


async def make_due(sub_id: int, name: str) -> int:
    """Make the subscription's pending `name` timers due now; how many there were."""
    due = 0
    for job in await Job.filter(state=JobState.PENDING, name=name):
        if job.payload.get("subscription") == sub_id:
            await Job.filter(id=job.id).update(run_after=datetime.now(UTC) - timedelta(seconds=1))
            due += 1
    return due


# --- reading -------------------------------------------------------------------------------


async def test_plans_and_providers(pay: GraphQLClient) -> None:
    data = await pay(
        "{ paymentProviders plans { id code name description interval "
        "prices { currency amount } perks { maxPostLength maxAttachments } } }"
    )

    assert data["paymentProviders"] == ["bank", "transfer"]
    (plan,) = data["plans"]
    assert plan["code"] == "supporter"
    assert plan["name"] == "Supporter"
    assert plan["description"] == "Keeps the lights on."
    assert plan["interval"] == "MONTH"
    assert plan["prices"] == [
        {"currency": "eur", "amount": 500},
        {"currency": "usd", "amount": 600},
    ]
    assert plan["perks"]["maxPostLength"] == 5000
    assert db_id(plan["id"]) == (await Plan.get(code="supporter")).id


async def test_a_subscription_is_only_the_viewers_own(pay: GraphQLClient) -> None:
    alice = await pay.sign_up("alice")
    bob = await pay.sign_up("bob")
    await subscribe(pay, alice)

    other = await pay(
        '{ user(username: "alice") { isPremium subscription { id } } }', token=bob.access_token
    )
    own = await viewer(pay, alice)

    assert other["user"] == {"isPremium": False, "subscription": None}
    assert own["subscription"]["provider"] == "bank"
    assert (await viewer(pay, bob))["subscription"] is None


# --- subscribing with manual payments --------------------------------------------------------


async def test_manual_subscription_is_premium_once_an_admin_confirms(pay: GraphQLClient) -> None:
    alice = await pay.sign_up("alice")
    boss = await admin(pay)

    started = await subscribe(pay, alice, currency="USD")

    assert started["__typename"] == "SubscribeSuccess", started
    sub = started["subscription"]
    assert sub["status"] == "INCOMPLETE"
    assert sub["accessUntil"] is None
    pending = sub["pendingPayment"]
    assert pending["kind"] == "AWAIT_MANUAL_PAYMENT"
    assert (pending["amount"], pending["currency"]) == (600, "usd")
    payment_id = db_id(pending["paymentId"])
    assert "IBAN XX00 HOLD FAST." in pending["instructions"]
    assert f"Reference (quote it with the payment): {payment_id}" in pending["instructions"]
    assert "6.00 USD" in pending["instructions"]
    assert started["nextAction"]["paymentId"] == pending["paymentId"]
    assert sub["actionRequired"]["kind"] == "PAY"
    assert sub["actionRequired"]["provider"] == "bank"
    before = await viewer(pay, alice)
    assert before["isPremium"] is False
    assert before["subscription"]["status"] == "INCOMPLETE"

    # A member may not confirm it: nothing changes.
    refused = await run(pay, CONFIRM, alice, paymentId=pending["paymentId"])
    assert refused["__typename"] == "ConfirmManualPaymentError"
    assert refused["code"] == "FORBIDDEN"
    assert (await Payment.get(id=payment_id)).status is PaymentStatus.PENDING
    assert (await viewer(pay, alice))["isPremium"] is False

    confirmed = await run(pay, CONFIRM, boss, paymentId=pending["paymentId"])
    assert confirmed["__typename"] == "ConfirmManualPaymentSuccess", confirmed
    after = await viewer(pay, alice)
    assert after["isPremium"] is True
    paid = after["subscription"]
    assert paid["status"] == "ACTIVE"
    assert paid["actionRequired"] is None
    assert paid["pendingPayment"] is None
    start, end = when(paid["currentPeriodStart"]), when(paid["currentPeriodEnd"])
    assert end == add_interval(start, "month")
    assert when(paid["accessUntil"]) == end + GRACE
    payment = await Payment.get(id=payment_id)
    assert payment.status is PaymentStatus.SUCCEEDED
    assert payment.confirmed_by_id == db_id(boss.id)

    # Confirmed once: a second confirmation is refused; a second subscription too.
    again = await run(pay, CONFIRM, boss, paymentId=pending["paymentId"])
    assert again["code"] == "INVALID_INPUT"
    twice = await subscribe(pay, alice)
    assert twice["code"] == "ALREADY_SUBSCRIBED"


async def test_cancel_resume_and_cancel_at_once(pay: GraphQLClient) -> None:
    alice = await pay.sign_up("alice")
    boss = await admin(pay)
    paid = await subscribed_and_paid(pay, alice, boss)
    end = when(paid["currentPeriodEnd"])

    canceled = await run(pay, CANCEL, alice, atPeriodEnd=True)
    assert canceled["__typename"] == "CancelSubscriptionSuccess", canceled
    kept = await viewer(pay, alice)
    assert kept["subscription"]["status"] == "CANCELED"
    assert kept["subscription"]["cancelAtPeriodEnd"] is True
    assert when(kept["subscription"]["accessUntil"]) == end
    assert kept["isPremium"] is True

    resumed = await run(pay, RESUME, alice)
    assert resumed["__typename"] == "ResumeSubscriptionSuccess", resumed
    assert resumed["subscription"]["status"] == "ACTIVE"
    assert resumed["subscription"]["cancelAtPeriodEnd"] is False
    assert when(resumed["subscription"]["accessUntil"]) == end + GRACE
    not_canceled = await run(pay, RESUME, alice)
    assert not_canceled["code"] == "INVALID_INPUT"

    ended = await run(pay, CANCEL, alice, atPeriodEnd=False)
    assert ended["subscription"]["status"] == "EXPIRED"
    gone = await viewer(pay, alice)
    assert gone == {"id": alice.id, "isPremium": False, "subscription": None}
    nothing = await run(pay, CANCEL, alice, atPeriodEnd=True)
    assert nothing["code"] == "NOT_SUBSCRIBED"


async def test_complimentary_grants_and_the_subscribers_list(pay: GraphQLClient) -> None:
    alice = await pay.sign_up("alice")
    bob = await pay.sign_up("bob")
    carol = await pay.sign_up("carol")
    boss = await admin(pay)
    plan = await plan_id(pay)

    refused = await run(pay, GRANT, alice, userId=bob.id, planId=plan, days=30)
    assert refused["code"] == "FORBIDDEN"
    assert await Subscription.all().count() == 0
    bad_days = await run(pay, GRANT, boss, userId=bob.id, planId=plan, days=0)
    assert (bad_days["code"], bad_days["field"]) == ("INVALID_INPUT", "days")

    granted = await run(pay, GRANT, boss, userId=bob.id, planId=plan, days=30)
    assert granted["__typename"] == "GrantComplimentarySuccess", granted
    bobs = await viewer(pay, bob)
    assert bobs["isPremium"] is True
    assert bobs["subscription"]["complimentary"] is True
    assert bobs["subscription"]["provider"] == "complimentary"
    assert bobs["subscription"]["status"] == "ACTIVE"
    await subscribed_and_paid(pay, alice, boss)
    await subscribe(pay, carol)

    first = (await pay(SUBSCRIBERS, {"first": 2}, token=boss.access_token))["subscribers"]
    rest = (
        await pay(
            SUBSCRIBERS,
            {"first": 2, "after": first["pageInfo"]["endCursor"]},
            token=boss.access_token,
        )
    )["subscribers"]
    incomplete = (await pay(SUBSCRIBERS, {"status": "INCOMPLETE"}, token=boss.access_token))[
        "subscribers"
    ]

    names = [e["node"]["user"]["username"] for e in first["edges"] + rest["edges"]]
    assert names == ["carol", "alice", "bob"]  # newest first
    assert first["pageInfo"]["hasNextPage"] is True
    assert rest["pageInfo"]["hasNextPage"] is False
    assert [e["node"]["user"]["username"] for e in incomplete["edges"]] == ["carol"]

    for token in (alice.access_token, None):
        response = await pay.post(SUBSCRIBERS, {"first": 2}, token=token)
        body = response.json()
        assert body["data"] is None
        code = "FORBIDDEN" if token else "NOT_AUTHENTICATED"
        assert body["errors"][0]["extensions"]["code"] == code


async def test_bad_input_is_a_typed_error_and_writes_nothing(pay: GraphQLClient) -> None:
    alice = await pay.sign_up("alice")
    no_plan = relay.to_base64("Plan", 12345)

    unknown_plan = await pay(
        SUBSCRIBE, {"input": {"planId": no_plan, "provider": "bank"}}, token=alice.access_token
    )
    closed = await subscribe(pay, alice, "cash")
    unknown = await subscribe(pay, alice, "nowhere")
    currency = await subscribe(pay, alice, currency="gbp")
    signed_out = await pay(SUBSCRIBE, {"input": {"planId": await plan_id(pay), "provider": "bank"}})

    assert unknown_plan["subscribe"]["code"] == "NOT_FOUND"
    assert unknown_plan["subscribe"]["field"] == "planId"
    assert (closed["code"], closed["field"]) == ("PROVIDER_NOT_ACCEPTED", "provider")
    assert unknown["code"] == "PROVIDER_NOT_ACCEPTED"
    assert (currency["code"], currency["field"]) == ("INVALID_INPUT", "currency")
    assert signed_out["subscribe"]["code"] == "NOT_AUTHENTICATED"
    assert await Subscription.all().count() == 0
    assert await Payment.all().count() == 0


# --- renewals, grace, expiry -----------------------------------------------------------------


async def test_manual_renewal_grace_and_expiry(pay: GraphQLClient, pay_app: Starlette) -> None:
    services = services_of(pay_app)
    alice = await pay.sign_up("alice")
    boss = await admin(pay)
    paid = await subscribed_and_paid(pay, alice, boss)
    sub_id = db_id(paid["id"])

    # The renewal is due (its period ends in a day): a reminder to pay, access unchanged.
    end = datetime.now(UTC) + timedelta(days=1)
    await move_period_end(sub_id, end)
    assert await services.jobs.run_due(services.changes) >= 1
    reminded = await viewer(pay, alice)
    renewal = await Payment.get(subscription_id=sub_id, renewal=True)
    assert renewal.status is PaymentStatus.PENDING
    assert reminded["isPremium"] is True
    sub = reminded["subscription"]
    assert sub["status"] == "ACTIVE"
    assert sub["actionRequired"]["kind"] == "PAY"
    assert sub["pendingPayment"]["kind"] == "AWAIT_MANUAL_PAYMENT"
    assert db_id(sub["pendingPayment"]["paymentId"]) == renewal.id
    assert (
        f"Reference (quote it with the payment): {renewal.id}"
        in sub["pendingPayment"]["instructions"]
    )
    assert "5.00 EUR" in sub["pendingPayment"]["instructions"]
    assert renewal.period_start is not None
    assert abs(renewal.period_start - end) < timedelta(seconds=1)

    # The period ends unpaid: past due, in the grace period, still premium.
    await move_period_end(sub_id, datetime.now(UTC) - timedelta(minutes=1))
    await services.jobs.run_due(services.changes)
    late = await viewer(pay, alice)
    assert late["isPremium"] is True
    assert late["subscription"]["status"] == "PAST_DUE"
    assert late["subscription"]["inGracePeriod"] is True
    assert late["subscription"]["actionRequired"]["kind"] == "PAY"
    assert (await Subscription.get(id=sub_id)).status is SubscriptionStatus.PAST_DUE

    # The grace period ends: expired, no premium, the reminder withdrawn.
    await Subscription.filter(id=sub_id).update(
        access_until=datetime.now(UTC) - timedelta(seconds=1)
    )
    assert await make_due(sub_id, PERIOD_END) == 1
    await services.jobs.run_due(services.changes)
    over = await viewer(pay, alice)
    assert over["isPremium"] is False
    assert over["subscription"] is None
    assert (await Subscription.get(id=sub_id)).status is SubscriptionStatus.EXPIRED
    assert (await Payment.get(id=renewal.id)).status is PaymentStatus.CANCELED


# --- webhooks --------------------------------------------------------------------------------


async def test_webhooks_of_unknown_and_manual_providers_are_refused(pay: GraphQLClient) -> None:
    jobs = await Job.all().count()

    unknown = await pay.http.post("/webhooks/payments/nowhere", content=b"{}")
    manual = await pay.http.post(
        "/webhooks/payments/bank", content=b'{"id": "evt_1"}', headers={"x-signature": "x"}
    )

    assert unknown.status_code == 404
    assert manual.status_code == 400
    assert manual.json()["errors"][0]["extensions"]["code"] == "INVALID_WEBHOOK"
    assert await PaymentEventRecord.all().count() == 0
    assert await Job.all().count() == jobs


# --- the payments CLI --------------------------------------------------------------------------


def holdfast(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOLDFAST, "payments", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def cli_env(tmp_path: Path, settings: Settings) -> dict[str, str]:
    return holdfast_env(
        tmp_path / "data",
        HOLDFAST_DATABASE_URL=settings.effective_database_url,
        HOLDFAST_PAYMENTS=json.dumps(PAYMENTS),
        # An assigned node id: a leased one would stay recorded in the shared test database,
        # where the lease tests expect only their own.
        HOLDFAST_NODE_ID="900",
    )


async def test_migrate_moves_subscribers_to_another_provider(
    pay: GraphQLClient, pay_app: Starlette, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, services_of(pay_app).settings)
    alice = await pay.sign_up("alice")
    bob = await pay.sign_up("bob")
    boss = await admin(pay)
    alices = await subscribed_and_paid(pay, alice, boss)
    bobs = await subscribed_and_paid(pay, bob, boss)
    old_end = when(alices["currentPeriodEnd"])

    unknown = holdfast(env, "migrate", "--from", "bank", "--to", "nowhere")
    unknown_source = holdfast(env, "migrate", "--from", "nobody", "--to", "transfer")
    migrated = holdfast(env, "migrate", "--from", "bank", "--to", "transfer")

    assert unknown.returncode == 2
    assert "no payment configuration 'nowhere'" in unknown.stderr
    assert unknown_source.returncode == 2
    assert "no payment configuration 'nobody'" in unknown_source.stderr
    assert migrated.returncode == 0, migrated.stderr
    assert "marked 2 subscriptions of bank to go on through transfer" in migrated.stdout
    assert "moved to transfer: 0" in migrated.stdout
    assert "not yet: 2" in migrated.stdout
    assert "alice (user" in migrated.stdout
    told = await viewer(pay, alice)
    assert told["isPremium"] is True
    assert told["subscription"]["status"] == "CANCELED"
    assert told["subscription"]["actionRequired"]["kind"] == "SWITCH_PROVIDER"
    assert told["subscription"]["actionRequired"]["provider"] == "transfer"
    assert "transfer" in told["subscription"]["actionRequired"]["message"]
    # A move keeps the grace period: the subscriber did nothing wrong.
    assert when(told["subscription"]["accessUntil"]) == old_end + GRACE

    # Alice goes on through the new configuration: her new period starts where the paid one
    # ends.
    moved = await subscribed_and_paid(pay, alice, boss, provider="transfer")
    assert moved["provider"] == "transfer"
    assert when(moved["currentPeriodStart"]) == old_end
    assert when(moved["currentPeriodEnd"]) == add_interval(old_end, "month")
    now_alices = await viewer(pay, alice)
    assert now_alices["subscription"]["id"] == moved["id"]
    assert now_alices["subscription"]["actionRequired"] is None

    report = holdfast(env, "report", "--from", "bank", "--to", "transfer")
    again = holdfast(env, "migrate", "--from", "bank", "--to", "transfer")

    assert report.returncode == 0, report.stderr
    assert "marked" not in report.stdout
    assert "moved to transfer: 1" in report.stdout
    assert f"alice (user {db_id(alice.id)}): subscription {db_id(moved['id'])}" in report.stdout
    assert "not yet: 1" in report.stdout
    bob_until = when(bobs["currentPeriodEnd"]) + GRACE
    assert (
        f"bob (user {db_id(bob.id)}): access until {bob_until.isoformat(timespec='seconds')}"
        in report.stdout
    )
    assert again.returncode == 0, again.stderr
    assert "marked 0 subscriptions" in again.stdout
    assert (await viewer(pay, bob))["isPremium"] is True


async def test_sync_and_reconcile(pay: GraphQLClient, pay_app: Starlette, tmp_path: Path) -> None:
    env = cli_env(tmp_path, services_of(pay_app).settings)

    synced = holdfast(env, "sync")
    reconciled = holdfast(env, "reconcile")
    one = holdfast(env, "reconcile", "--provider", "bank")
    unknown = holdfast(env, "reconcile", "--provider", "nowhere")

    assert synced.returncode == 0, synced.stderr
    assert "plans: 1" in synced.stdout
    assert "bank: 0 objects at the provider" in synced.stdout
    assert reconciled.returncode == 0, reconciled.stderr
    assert reconciled.stdout.splitlines() == [
        "bank: 0 new events",
        "transfer: 0 new events",
        "cash: 0 new events",
    ]
    assert one.stdout.splitlines() == ["bank: 0 new events"]
    assert unknown.returncode == 2
    assert "no payment configuration 'nowhere' (configured: bank, transfer, cash)" in (
        unknown.stderr
    )
    assert await Plan.filter(code="supporter").count() == 1
