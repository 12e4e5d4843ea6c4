"""The callback inbox: a partner's event is written here before the partner is answered,
and stays due (`next_attempt_at`) until the relay has delivered it to its workflow."""

import hashlib
import json
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.messages import InboxEvent, ReusedEvent
from store.sql import insert_ignore
from store.tables import WebhookConflictRow, WebhookEventRow

LEASE = timedelta(seconds=60)  # a relay that took an event and died: another takes it then
MAX_BACKOFF = timedelta(minutes=5)


Receipt = Literal["new", "duplicate", "reused"]


async def record(
    session: AsyncSession, event: InboxEvent, now: datetime, due_at: datetime
) -> Receipt:
    """Keep the event (`new`). An event id already received is a `duplicate` when it says
    what the first said (a replay: no second effect), else `reused`: it is not the same
    event, so it is kept apart for operators and must not be dropped as a replay.
    `due_at` is when the relay takes a new event if no one has delivered it by then."""
    if await insert_ignore(
        session,
        WebhookEventRow,
        source=event.source,
        event_id=event.event_id,
        order_id=event.order_id,
        payload=event.payload,
        received_at=now,
        attempts=0,
        next_attempt_at=due_at,
    ):
        return "new"
    first = await session.get(WebhookEventRow, (event.source, event.event_id))
    if first is not None and _same(first, event):
        return "duplicate"
    await insert_ignore(
        session,
        WebhookConflictRow,
        source=event.source,
        event_id=event.event_id,
        order_id=event.order_id,
        payload=event.payload,
        payload_sha256=hashlib.sha256(event.payload.encode()).hexdigest(),
        received_at=now,
    )
    return "reused"


def _same(first: WebhookEventRow, event: InboxEvent) -> bool:
    """The same event: the same order and the same notice (compared as JSON values)."""
    if (first.order_id or "") != event.order_id:
        return False
    try:
        return bool(json.loads(first.payload or "null") == json.loads(event.payload))
    except ValueError:
        return first.payload == event.payload


async def reused(session: AsyncSession, limit: int) -> list[ReusedEvent]:
    """Callbacks refused for reusing an event id, newest first, beside the first event."""
    rows = (
        await session.execute(
            select(WebhookConflictRow, WebhookEventRow)
            .join(
                WebhookEventRow,
                (WebhookEventRow.source == WebhookConflictRow.source)
                & (WebhookEventRow.event_id == WebhookConflictRow.event_id),
            )
            .order_by(WebhookConflictRow.received_at.desc(), WebhookConflictRow.id.desc())
            .limit(limit)
        )
    ).all()
    return [
        ReusedEvent.model_validate(
            {
                "source": c.source,
                "event_id": c.event_id,
                "order_id": c.order_id,
                "payload": c.payload,
                "received_at": c.received_at,
                "first_order_id": first.order_id or "",
                "first_payload": first.payload or "{}",
            }
        )
        for c, first in rows
    ]


async def delivered(
    session: AsyncSession, source: str, event_id: str, outcome: str, now: datetime
) -> None:
    await session.execute(
        update(WebhookEventRow)
        .where(WebhookEventRow.source == source, WebhookEventRow.event_id == event_id)
        .values(next_attempt_at=None, delivered_at=now, outcome=outcome, last_error=None)
    )


async def failed(
    session: AsyncSession, source: str, event_id: str, error: str, attempts: int, now: datetime
) -> datetime:
    """Count a failed delivery and put the event off, doubling up to MAX_BACKOFF."""
    retry_at = now + min(timedelta(seconds=2**attempts), MAX_BACKOFF)
    await session.execute(
        update(WebhookEventRow)
        .where(WebhookEventRow.source == source, WebhookEventRow.event_id == event_id)
        .values(attempts=attempts, next_attempt_at=retry_at, last_error=error[:500])
    )
    return retry_at


async def take_due(session: AsyncSession, now: datetime, limit: int) -> list[InboxEvent]:
    """The events due now, leased to this relay (in the caller's write transaction)."""
    rows = (
        await session.scalars(
            select(WebhookEventRow)
            .where(WebhookEventRow.next_attempt_at <= now)
            .order_by(WebhookEventRow.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    events = [_event(row) for row in rows]
    for row in rows:
        row.next_attempt_at = now + LEASE
    return events


async def pending(session: AsyncSession, limit: int) -> list[InboxEvent]:
    """Events not yet delivered, oldest first: what an operator looks at in an outage."""
    rows = (
        await session.scalars(
            select(WebhookEventRow)
            .where(WebhookEventRow.next_attempt_at.is_not(None))
            .order_by(WebhookEventRow.received_at)
            .limit(limit)
        )
    ).all()
    return [_event(row) for row in rows]


def _event(row: WebhookEventRow) -> InboxEvent:
    return InboxEvent(
        source=row.source,
        event_id=row.event_id,
        order_id=row.order_id or "",
        payload=row.payload or "{}",
        received_at=row.received_at,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
    )
