"""Vendor events in the ledger: webhook deliveries and reconciliation pulls recorded once
each (`payment_events` is unique per configuration and event id), and applied by a job to the
payment they are about (app/services/billing_ledger.py says what an outcome does)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from app import sql
from app.changes import Change
from app.ids import new_id
from app.models import Payment, PaymentEventRecord, PaymentFeed, PaymentStatus
from app.services.billing_ledger import APPLY_EVENT, EVENT_PAGE, LedgerCore, now
from providers.payments.base import EventKind, PaymentEvent

log = logging.getLogger("holdfast.payments")


class LedgerEvents(LedgerCore):
    async def ingest(self, change: Change, name: str, events: Sequence[PaymentEvent]) -> int:
        """Record vendor events not seen before and enqueue their application; returns how
        many were new. Concurrent deliveries of one event insert it once."""
        new = 0
        for event in events:
            record_id = await self._record_event(change, name, event)
            if record_id is not None:
                new += 1
                await change.enqueue(APPLY_EVENT, {"event": record_id})
        return new

    async def _record_event(self, change: Change, name: str, event: PaymentEvent) -> int | None:
        record_id = new_id()
        data = {
            "amount": event.amount,
            "currency": event.currency,
            "failure": event.failure,
        }
        inserted = await sql.execute(
            "INSERT INTO payment_events (id, provider, event_id, kind, occurred_at, charge_id, "
            "reference, data, received_at) VALUES (:id, :provider, :event_id, :kind, "
            ":occurred_at, :charge_id, :reference, :data, :now) "
            "ON CONFLICT (provider, event_id) DO NOTHING",
            {
                "id": record_id,
                "provider": name,
                "event_id": event.id[:255],
                "kind": event.kind.value,
                "occurred_at": event.occurred_at,
                "charge_id": event.charge_id,
                "reference": (event.reference or "")[:64] or None,
                "data": _json(data),
            },
            change.conn,
        )
        return record_id if inserted else None

    async def receive_webhook(self, name: str, body: bytes, headers: Mapping[str, str]) -> int:
        """A webhook delivery for configuration `name`: verified on the raw body
        (InvalidWebhook otherwise; LookupError for a name not configured), its events
        recorded and their application enqueued. Returns how many events were new."""
        provider = self.payments.get(name)
        events = provider.verify_webhook(body, headers)
        async with self.changes.begin() as change:
            return await self.ingest(change, name, events)

    async def apply_event(self, change: Change, payload: dict[str, Any]) -> None:
        """`payments.apply` {event}: apply a recorded event to its payment, once."""
        record = (
            await PaymentEventRecord.filter(id=payload["event"])
            .select_for_update()
            .using_db(change.conn)
            .first()
        )
        if record is None or record.processed_at is not None:
            return
        record.processed_at = now()
        await record.save(using_db=change.conn, update_fields=["processed_at"])
        payment = await self._payment_of(change, record)
        if payment is None:
            log.info(
                "payment event %s from %s names no payment of ours",
                record.event_id,
                record.provider,
            )
            return
        await self._lock(change, payment.subscription_id)
        if record.charge_id and payment.charge_id is None:
            await (
                Payment.filter(id=payment.id, charge_id=None)
                .using_db(change.conn)
                .update(charge_id=record.charge_id)
            )
        kind = EventKind(record.kind)
        failure = record.data.get("failure") if isinstance(record.data, dict) else None
        if kind is EventKind.CHARGE_SUCCEEDED:
            await self.paid(change, payment.id, record.occurred_at)
        elif kind is EventKind.CHARGE_FAILED:
            await self.failed(change, payment.id, str(failure or "The payment failed."))
        elif kind is EventKind.CHARGE_CANCELED:
            await self.failed(change, payment.id, None, status=PaymentStatus.CANCELED)

    async def _payment_of(self, change: Change, record: PaymentEventRecord) -> Payment | None:
        if record.reference and record.reference.isdigit():
            payment = (
                await Payment.filter(id=int(record.reference), provider=record.provider)
                .using_db(change.conn)
                .first()
            )
            if payment is not None:
                return payment
        if record.charge_id:
            return (
                await Payment.filter(provider=record.provider, charge_id=record.charge_id)
                .using_db(change.conn)
                .first()
            )
        return None

    async def reconcile(self, name: str) -> int:
        """Pull the events of configuration `name` since the last one seen and record those
        missed; returns how many were new. Each page and the position after it commit
        together, so an interrupted run resumes where it stopped."""
        provider = self.payments.get(name)
        feed = await PaymentFeed.get_or_none(provider=name)
        cursor = feed.cursor if feed is not None else None
        new = 0
        while True:
            page = await provider.events_since(cursor, limit=EVENT_PAGE)
            async with self.changes.begin() as change:
                new += await self.ingest(change, name, page.events)
                await sql.execute(
                    "INSERT INTO payment_feeds (provider, cursor, updated_at) "
                    "VALUES (:provider, :cursor, :now) ON CONFLICT (provider) "
                    "DO UPDATE SET cursor = :cursor, updated_at = :now",
                    {"provider": name, "cursor": page.cursor},
                    change.conn,
                )
            if not page.more or page.cursor == cursor:
                return new
            cursor = page.cursor


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()
