"""The payments contract: every `PaymentProvider` passes these same cases through its harness
(`payments_harness.py`) against a real local server or none, so that switching processors by
configuration is proven rather than hoped for.

Where a provider differs by design the case branches on what the interface itself says, not
on the provider's name: a charge PENDING with `AWAIT_MANUAL_PAYMENT` is settled in the app by
an admin (the provider can never see it paid), and the harness's flags name what a vendor
lacks (webhooks, events, off-session charging)."""

from __future__ import annotations

import socket
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel, SecretStr

from providers.errors import (
    ConfigurationError,
    Declined,
    InvalidWebhook,
    NotFound,
    ProviderError,
    Unavailable,
)
from providers.payments.base import (
    FINAL_STATUSES,
    WEBHOOK_TOLERANCE_SECONDS,
    ActionKind,
    Charge,
    ChargeRequest,
    ChargeStatus,
    Customer,
    EventKind,
    EventPage,
    Interval,
    PaymentEvent,
    PaymentProvider,
    PlanPrice,
)
from tests.contract.payments_harness import PaymentsHarness

MONTHLY = PlanPrice("supporter", "Supporter", 500, "eur", Interval.MONTH)
YEARLY = PlanPrice("supporter", "Supporter", 5000, "eur", Interval.YEAR)
START = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2025, 2, 1, tzinfo=UTC)


async def new_customer(harness: PaymentsHarness, reference: str = "user-1") -> str:
    return await harness.provider.create_customer(
        Customer(reference=reference, email=f"{reference}@example.org", name="Ada Lovelace")
    )


def charge_request(
    reference: str,
    customer_id: str,
    *,
    method: str | None = None,
    off_session: bool = False,
    price: PlanPrice = MONTHLY,
) -> ChargeRequest:
    return ChargeRequest(
        reference=reference,
        customer_id=customer_id,
        price=price,
        period_start=START,
        period_end=END,
        off_session=off_session,
        payment_method=method,
    )


def settled_in_app(charge: Charge) -> bool:
    """A manual payment: only the ledger (an admin) can see it paid."""
    return charge.action.kind is ActionKind.AWAIT_MANUAL_PAYMENT


async def paid_charge(harness: PaymentsHarness, reference: str, customer_id: str) -> Charge:
    """A charge the payer paid (with a method collected beforehand where the vendor has
    such things, else at the vendor), and that the vendor reports paid."""
    charge = await harness.provider.charge(
        charge_request(reference, customer_id, method=harness.payment_method())
    )
    if charge.status is ChargeStatus.PENDING:
        await harness.pay(charge)
    fetched = await harness.provider.fetch(charge.id)
    assert fetched.status is ChargeStatus.SUCCEEDED
    return fetched


def secrets_of(provider: PaymentProvider) -> list[str]:
    options = getattr(provider, "options", None)
    assert isinstance(options, BaseModel)
    values = [getattr(options, name) for name in type(options).model_fields]
    return [value.get_secret_value() for value in values if isinstance(value, SecretStr)]


async def test_is_a_payment_provider(payments_harness: PaymentsHarness) -> None:
    assert isinstance(payments_harness.provider, PaymentProvider)
    assert payments_harness.provider.kind == payments_harness.name


async def test_sync_plans_is_idempotent_and_follows_renames(
    payments_harness: PaymentsHarness,
) -> None:
    provider = payments_harness.provider
    first = await provider.sync_plans([MONTHLY, YEARLY])
    assert set(first) <= {MONTHLY.key, YEARLY.key}
    assert await provider.sync_plans([MONTHLY, YEARLY]) == first
    if not first:
        return  # a vendor without plan objects
    assert set(first) == {MONTHLY.key, YEARLY.key}
    assert first[MONTHLY.key] != first[YEARLY.key]
    renamed = await provider.sync_plans(
        [replace(MONTHLY, name="Supporter plus"), replace(YEARLY, name="Supporter plus")]
    )
    assert renamed == first  # a new name keeps the vendor's objects
    repriced = await provider.sync_plans([replace(MONTHLY, amount=600), YEARLY])
    assert repriced[YEARLY.key] == first[YEARLY.key]
    assert repriced[MONTHLY.key] != first[MONTHLY.key]  # another amount is another price


async def test_create_customer_is_idempotent_on_reference(
    payments_harness: PaymentsHarness,
) -> None:
    first = await new_customer(payments_harness, "user-1")
    assert first
    assert await new_customer(payments_harness, "user-1") == first
    assert await new_customer(payments_harness, "user-2") != first


async def test_charge_with_the_payer_present_is_paid(payments_harness: PaymentsHarness) -> None:
    customer_id = await new_customer(payments_harness)
    method = payments_harness.payment_method()
    charge = await payments_harness.provider.charge(
        charge_request("pay-1", customer_id, method=method)
    )
    assert (charge.reference, charge.amount, charge.currency) == ("pay-1", 500, "eur")
    if charge.status is ChargeStatus.PENDING:
        assert charge.action.kind is not ActionKind.NONE
        if settled_in_app(charge):
            assert charge.action.instructions is not None
            assert "pay-1" in charge.action.instructions
            assert "5.00 EUR" in charge.action.instructions
            assert (await payments_harness.provider.fetch(charge.id)) == charge
            return
        await payments_harness.pay(charge)
    else:
        assert charge.status is ChargeStatus.SUCCEEDED
    fetched = await payments_harness.provider.fetch(charge.id)
    assert (fetched.id, fetched.reference, fetched.status) == (
        charge.id,
        "pay-1",
        ChargeStatus.SUCCEEDED,
    )
    assert (fetched.amount, fetched.currency) == (500, "eur")


async def test_charge_without_a_method_waits_for_the_payer(
    payments_harness: PaymentsHarness,
) -> None:
    customer_id = await new_customer(payments_harness)
    charge = await payments_harness.provider.charge(charge_request("pay-2", customer_id))
    assert charge.status is ChargeStatus.PENDING
    assert charge.action.kind is not ActionKind.NONE
    if charge.action.kind is ActionKind.CONFIRM_CARD:
        assert charge.action.client_secret
    if settled_in_app(charge):
        return
    await payments_harness.pay(charge)
    assert (await payments_harness.provider.fetch(charge.id)).status is ChargeStatus.SUCCEEDED


async def test_charge_is_idempotent_on_reference(payments_harness: PaymentsHarness) -> None:
    provider = payments_harness.provider
    customer_id = await new_customer(payments_harness)
    method = payments_harness.payment_method()
    first = await provider.charge(charge_request("pay-3", customer_id, method=method))
    again = await provider.charge(charge_request("pay-3", customer_id, method=method))
    assert again.id == first.id
    assert again.status == first.status
    waiting = await provider.charge(charge_request("pay-4", customer_id))
    assert (await provider.charge(charge_request("pay-4", customer_id))).id == waiting.id
    assert waiting.id != first.id
    if payments_harness.events:
        events = await all_events(provider)
        paid = [
            event
            for event in events
            if event.kind is EventKind.CHARGE_SUCCEEDED and event.reference == "pay-3"
        ]
        assert len(paid) == (1 if first.status is ChargeStatus.SUCCEEDED else 0)


async def test_declined_method_raises_declined(payments_harness: PaymentsHarness) -> None:
    method = payments_harness.payment_method(declined=True)
    if method is None:
        pytest.skip("the vendor has no payment methods to decline")
    provider = payments_harness.provider
    customer_id = await new_customer(payments_harness)
    with pytest.raises(Declined) as refused:
        await provider.charge(charge_request("pay-5", customer_id, method=method))
    assert str(refused.value).strip()
    # A retried job gets the same answer, and is not charged.
    with pytest.raises(Declined):
        await provider.charge(charge_request("pay-5", customer_id, method=method))
    if payments_harness.events:
        assert not [
            event
            for event in await all_events(provider)
            if event.kind is EventKind.CHARGE_SUCCEEDED and event.reference == "pay-5"
        ]


async def test_off_session_renewal_charges_the_saved_method(
    payments_harness: PaymentsHarness,
) -> None:
    provider = payments_harness.provider
    customer_id = await new_customer(payments_harness)
    first = await provider.charge(
        charge_request("pay-6", customer_id, method=payments_harness.payment_method())
    )
    if first.status is ChargeStatus.PENDING and not settled_in_app(first):
        await payments_harness.pay(first)
    renewal = await provider.charge(
        charge_request("pay-7", customer_id, off_session=True, price=YEARLY)
    )
    assert (renewal.reference, renewal.amount, renewal.currency) == ("pay-7", 5000, "eur")
    assert renewal.id != first.id
    if payments_harness.off_session:
        assert renewal.status is ChargeStatus.SUCCEEDED
        assert (await provider.fetch(renewal.id)).status is ChargeStatus.SUCCEEDED
    else:
        assert renewal.status is ChargeStatus.PENDING
        assert renewal.action.kind is not ActionKind.NONE


async def test_cancel_a_pending_charge_and_not_a_final_one(
    payments_harness: PaymentsHarness,
) -> None:
    provider = payments_harness.provider
    customer_id = await new_customer(payments_harness)
    pending = await provider.charge(charge_request("pay-8", customer_id))
    assert pending.status is ChargeStatus.PENDING
    canceled = await provider.cancel(pending.id)
    assert (canceled.id, canceled.reference, canceled.status) == (
        pending.id,
        "pay-8",
        ChargeStatus.CANCELED,
    )
    if settled_in_app(pending):
        return  # no vendor state: the ledger records the cancellation
    assert (await provider.fetch(pending.id)).status is ChargeStatus.CANCELED
    assert (await provider.cancel(pending.id)).status is ChargeStatus.CANCELED
    paid = await paid_charge(payments_harness, "pay-9", customer_id)
    assert (await provider.cancel(paid.id)).status is ChargeStatus.SUCCEEDED
    assert (await provider.fetch(paid.id)).status is ChargeStatus.SUCCEEDED


async def test_cancel_never_cancels_a_charge_the_payer_already_paid(
    payments_harness: PaymentsHarness,
) -> None:
    """Paid but not final yet (a Bitcoin payment awaiting confirmations) is not "not paid":
    cancelling it would leave the payer's money taken and never credited."""
    provider = payments_harness.provider
    customer_id = await new_customer(payments_harness)
    pending = await provider.charge(charge_request("pay-19", customer_id))
    if settled_in_app(pending):
        pytest.skip("a manual payment is confirmed in the app")
    await payments_harness.pay_unconfirmed(pending)
    canceled = await provider.cancel(pending.id)
    assert canceled.status is not ChargeStatus.CANCELED
    assert canceled.status in (ChargeStatus.PENDING, ChargeStatus.SUCCEEDED)
    assert (await provider.fetch(pending.id)).status is canceled.status


async def test_a_foreign_object_carrying_our_reference_is_never_ours(
    payments_harness: PaymentsHarness,
) -> None:
    """Another program on the vendor account (a shop's own invoices, another instance)
    may use the same reference; charging, webhooks and reconciliation never take its objects
    for our charge."""
    provider = payments_harness.provider
    customer_id = await new_customer(payments_harness)
    foreign = await payments_harness.foreign_charges("pay-20", customer_id)
    if not foreign:
        pytest.skip("the vendor holds no objects")
    charge = await provider.charge(charge_request("pay-20", customer_id))
    assert charge.id not in foreign
    assert charge.status is ChargeStatus.PENDING  # ours is not paid: theirs were
    assert (await provider.charge(charge_request("pay-20", customer_id))).id == charge.id
    now = datetime.now(UTC)
    unmarked = [foreign_id for foreign_id, marked in foreign.items() if not marked]
    if payments_harness.webhooks:
        for foreign_id in unmarked:
            body, headers = payments_harness.webhook(
                f"evt_foreign_{foreign_id}",
                replace(charge, id=foreign_id),
                succeeded=True,
                at=now,
            )
            [event] = provider.verify_webhook(body, headers, now=now)
            assert (event.kind, event.reference) == (EventKind.IGNORED, None)
    if payments_harness.events:
        about_foreign = [
            event for event in await all_events(provider) if event.charge_id in unmarked
        ]
        assert all(event.reference is None for event in about_foreign), about_foreign


async def test_a_pending_charge_the_vendor_gives_up_on_is_final_unpaid(
    payments_harness: PaymentsHarness,
) -> None:
    customer_id = await new_customer(payments_harness)
    pending = await payments_harness.provider.charge(charge_request("pay-10", customer_id))
    if settled_in_app(pending):
        pytest.skip("a manual payment has no vendor to give up on it")
    await payments_harness.expire(pending)
    status = (await payments_harness.provider.fetch(pending.id)).status
    assert status in FINAL_STATUSES - {ChargeStatus.SUCCEEDED}


async def test_fetch_and_cancel_of_an_unknown_charge(payments_harness: PaymentsHarness) -> None:
    with pytest.raises(NotFound):
        await payments_harness.provider.fetch("pi_3NoSuchChargeAnywhere")
    with pytest.raises(NotFound):
        await payments_harness.provider.cancel("pi_3NoSuchChargeAnywhere")


async def test_stop_renewals_then_no_off_session_charge_is_taken(
    payments_harness: PaymentsHarness,
) -> None:
    provider = payments_harness.provider
    customer_id = await new_customer(payments_harness)
    first = await provider.charge(
        charge_request("pay-11", customer_id, method=payments_harness.payment_method())
    )
    if first.status is ChargeStatus.PENDING and not settled_in_app(first):
        await payments_harness.pay(first)
    await provider.stop_renewals(customer_id)
    await provider.stop_renewals(customer_id)  # idempotent
    try:
        renewal = await provider.charge(charge_request("pay-12", customer_id, off_session=True))
    except Declined:
        pass
    else:
        assert renewal.status is ChargeStatus.PENDING
        assert renewal.action.kind is not ActionKind.NONE  # the payer must act
    if payments_harness.events:
        assert not [
            event
            for event in await all_events(provider)
            if event.kind is EventKind.CHARGE_SUCCEEDED and event.reference == "pay-12"
        ]


async def test_stop_renewals_of_an_unknown_customer(payments_harness: PaymentsHarness) -> None:
    await payments_harness.provider.stop_renewals("cus_NoSuchCustomer0")
    customer_id = await new_customer(payments_harness)
    await payments_harness.provider.stop_renewals(customer_id)  # nothing saved yet
    # ... and the payer can still pay when present.
    charge = await payments_harness.provider.charge(charge_request("pay-13", customer_id))
    assert charge.status is ChargeStatus.PENDING


async def test_verify_webhook_accepts_a_signed_delivery(
    payments_harness: PaymentsHarness,
) -> None:
    if not payments_harness.webhooks:
        pytest.skip("the vendor sends no webhooks")
    customer_id = await new_customer(payments_harness)
    charge = await paid_charge(payments_harness, "pay-14", customer_id)
    now = datetime.now(UTC)
    for succeeded, kind in ((True, EventKind.CHARGE_SUCCEEDED), (False, EventKind.CHARGE_FAILED)):
        body, headers = payments_harness.webhook(
            f"evt_{kind.value}", charge, succeeded=succeeded, at=now - timedelta(seconds=5)
        )
        events = payments_harness.provider.verify_webhook(body, headers, now=now)
        assert [(e.id, e.kind, e.charge_id, e.reference) for e in events] == [
            (f"evt_{kind.value}", kind, charge.id, "pay-14")
        ]
        assert abs(events[0].occurred_at - (now - timedelta(seconds=5))) < timedelta(seconds=2)
        # Without `now`, the wall clock.
        assert payments_harness.provider.verify_webhook(body, headers) == events
    # A delivery at the edge of the tolerance is still accepted.
    body, headers = payments_harness.webhook("evt_edge", charge, succeeded=True, at=now)
    later = now + timedelta(seconds=WEBHOOK_TOLERANCE_SECONDS - 5)
    assert len(payments_harness.provider.verify_webhook(body, headers, now=later)) == 1


async def test_verify_webhook_refuses_what_it_cannot_trust(
    payments_harness: PaymentsHarness,
) -> None:
    provider = payments_harness.provider
    now = datetime.now(UTC)
    with pytest.raises(InvalidWebhook):
        provider.verify_webhook(b'{"id": "evt_1"}', {}, now=now)
    if not payments_harness.webhooks:
        return
    customer_id = await new_customer(payments_harness)
    charge = await paid_charge(payments_harness, "pay-15", customer_id)
    body, headers = payments_harness.webhook("evt_1", charge, succeeded=True, at=now)
    cases: dict[str, tuple[bytes, dict[str, str], datetime]] = {
        "no signature": (body, {}, now),
        "another secret": (
            body,
            dict(payments_harness.sign(body, at=now, secret="whsec_not_the_one")),
            now,
        ),
        "a changed body": (body.replace(b"pay-15", b"pay-99"), dict(headers), now),
        "stale": (
            body,
            dict(headers),
            now + timedelta(seconds=WEBHOOK_TOLERANCE_SECONDS + 60),
        ),
        "malformed": (b"{not json", dict(payments_harness.sign(b"{not json", at=now)), now),
        "not an event": (b"[1, 2]", dict(payments_harness.sign(b"[1, 2]", at=now)), now),
        "not utf-8": (b"\xff\xfe", dict(payments_harness.sign(b"\xff\xfe", at=now)), now),
    }
    for name, (raw, given, at) in cases.items():
        with pytest.raises(InvalidWebhook) as refused:
            provider.verify_webhook(raw, given, now=at)
        for secret in secrets_of(provider):
            assert secret not in str(refused.value), name


async def test_a_webhook_signed_in_the_future_is_refused(
    payments_harness: PaymentsHarness,
) -> None:
    if not payments_harness.webhooks:
        pytest.skip("the vendor sends no webhooks")
    customer_id = await new_customer(payments_harness)
    charge = await paid_charge(payments_harness, "pay-22", customer_id)
    now = datetime.now(UTC)
    later = now + timedelta(seconds=WEBHOOK_TOLERANCE_SECONDS + 60)
    body, headers = payments_harness.webhook("evt_future", charge, succeeded=True, at=later)
    with pytest.raises(InvalidWebhook):
        payments_harness.provider.verify_webhook(body, headers, now=now)


async def test_charging_again_after_the_vendor_gave_up_returns_the_final_charge(
    payments_harness: PaymentsHarness,
) -> None:
    """One behaviour for every provider: a retried `charge` of a reference whose charge the
    vendor gave up on returns that charge, final and unpaid (a new attempt is a new
    reference: the ledger's new payment), and starts nothing new."""
    provider = payments_harness.provider
    customer_id = await new_customer(payments_harness)
    pending = await provider.charge(charge_request("pay-23", customer_id))
    if settled_in_app(pending):
        pytest.skip("a manual payment has no vendor to give up on it")
    await payments_harness.expire(pending)
    again = await provider.charge(charge_request("pay-23", customer_id))
    assert again.id == pending.id
    assert again.status in FINAL_STATUSES - {ChargeStatus.SUCCEEDED}


async def test_a_refused_api_key_is_a_configuration_error(
    payments_harness: PaymentsHarness,
) -> None:
    # localstripe refuses a key that is not `sk_...`, as Stripe refuses a bad one.
    provider = payments_harness.configured(api_key="rk_refused_key_value_0")
    if provider is None:
        pytest.skip("no vendor to refuse a key")
    try:
        customer_id = await new_customer(payments_harness)
        with pytest.raises(ConfigurationError) as refused:
            await provider.charge(charge_request("pay-24", customer_id))
        assert "rk_refused_key_value_0" not in str(refused.value)
        with pytest.raises(ConfigurationError):
            await provider.fetch("pi3NoSuchChargeAnywhere")  # an id form every vendor takes
    finally:
        await provider.close()


async def test_a_server_that_never_answers_is_unavailable_within_the_timeout(
    payments_harness: PaymentsHarness,
) -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)  # accepts connections (the kernel does), never answers
        port = listening.getsockname()[1]
        provider = payments_harness.configured(url=f"http://127.0.0.1:{port}", timeout=1)
        if provider is None:
            pytest.skip("no vendor to call")
        try:
            started = time.monotonic()
            with pytest.raises(Unavailable):
                await provider.fetch("pi3SomeCharge")
            assert time.monotonic() - started < 5
        finally:
            await provider.close()


async def all_events(provider: PaymentProvider, cursor: str | None = None) -> list[PaymentEvent]:
    events: list[PaymentEvent] = []
    while True:
        page = await provider.events_since(cursor, limit=100)
        events.extend(page.events)
        cursor = page.cursor
        if not page.more:
            return events


async def test_events_since_returns_new_events_in_order_once(
    payments_harness: PaymentsHarness,
) -> None:
    provider = payments_harness.provider
    if not payments_harness.events:
        assert await provider.events_since(None) == EventPage(events=(), cursor=None)
        assert await provider.events_since("c-1", limit=5) == EventPage(events=(), cursor="c-1")
        return
    before = await provider.events_since(None)
    assert not before.more
    customer_id = await new_customer(payments_harness)
    charge = await paid_charge(payments_harness, "pay-16", customer_id)
    after = await provider.events_since(before.cursor)
    assert after.cursor != before.cursor
    assert not {event.id for event in after.events} & {event.id for event in before.events}
    times = [event.occurred_at for event in after.events]
    assert times == sorted(times)
    paid = [event for event in after.events if event.kind is EventKind.CHARGE_SUCCEEDED]
    assert [(event.charge_id, event.reference, event.amount, event.currency) for event in paid] == [
        (charge.id, "pay-16", 500, "eur")
    ]
    again = await provider.events_since(after.cursor)
    assert again == EventPage(events=(), cursor=after.cursor)
    # One at a time, the same events, each once.
    cursor, one_by_one = before.cursor, []
    while True:
        page = await provider.events_since(cursor, limit=1)
        assert len(page.events) <= 1
        one_by_one.extend(page.events)
        cursor = page.cursor
        if not page.events:
            break
    assert [event.id for event in one_by_one] == [event.id for event in after.events]


async def test_no_error_carries_a_secret(payments_harness: PaymentsHarness) -> None:
    provider = payments_harness.provider
    secrets = secrets_of(provider)
    errors: list[ProviderError] = []
    try:
        await provider.fetch("pi_3NoSuchChargeAnywhere")
    except ProviderError as exc:
        errors.append(exc)
    try:
        provider.verify_webhook(b"{}", {"stripe-signature": "t=1,v1=00"})
    except ProviderError as exc:
        errors.append(exc)
    declined = payments_harness.payment_method(declined=True)
    if declined is not None:
        customer_id = await new_customer(payments_harness)
        try:
            await provider.charge(charge_request("pay-17", customer_id, method=declined))
        except ProviderError as exc:
            errors.append(exc)
    assert len(errors) == (3 if declined is not None else 2)
    for error in errors:
        message = f"{error} {error!r} {error.__cause__!r} {error.__context__!r}"
        for secret in secrets:
            assert secret not in message
