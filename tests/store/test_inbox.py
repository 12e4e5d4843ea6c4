"""The callback inbox: recorded once per sender event, due until delivered, leased to one
relay at a time, backed off on failure."""

from datetime import timedelta

from domain.messages import InboxEvent
from store import inbox
from store.db import Database
from tests.store.helpers import T0, rows


def event(
    event_id: str, source: str = "payment", payload: str = '{"a": 1}', order_id: str = "o-1"
) -> InboxEvent:
    return InboxEvent.model_validate(
        {"source": source, "event_id": event_id, "order_id": order_id, "payload": payload}
    )


async def test_an_event_is_recorded_once_per_sender(db: Database) -> None:
    async with db.transaction() as session:
        assert await inbox.record(session, event("evt-1"), T0, T0) == "new"
    async with db.transaction() as session:
        assert await inbox.record(session, event("evt-1"), T0, T0) == "duplicate"
        assert await inbox.record(session, event("evt-1", "carrier"), T0, T0) == "new"
        assert await inbox.record(session, event("evt-2"), T0, T0) == "new"
        assert await inbox.record(session, event("evt-1", "carrier"), T0, T0) == "duplicate"
        same = event("evt-1", payload='{ "a" : 1 }')  # the same JSON, spaced otherwise
        assert await inbox.record(session, same, T0, T0) == "duplicate"
    assert await rows(db, "SELECT source, event_id FROM webhook_events ORDER BY 1, 2") == [
        ("carrier", "evt-1"),
        ("payment", "evt-1"),
        ("payment", "evt-2"),
    ]


async def test_due_events_are_leased_backed_off_and_cleared(db: Database) -> None:
    later = T0 + timedelta(seconds=10)
    async with db.transaction() as session:
        await inbox.record(session, event("evt-1"), T0, later)
        await inbox.record(session, event("evt-2"), T0, later + timedelta(seconds=1))

    async with db.transaction() as session:  # nothing is due before its time
        assert await inbox.take_due(session, T0, 10) == []
    async with db.transaction() as session:
        taken = await inbox.take_due(session, later, 10)
    assert [(e.event_id, e.payload, e.order_id) for e in taken] == [("evt-1", '{"a": 1}', "o-1")]
    async with db.transaction() as session:  # leased: a second relay does not take it too
        assert await inbox.take_due(session, later, 10) == []
    async with db.transaction() as session:  # unless the first died and the lease ran out
        again = await inbox.take_due(session, later + inbox.LEASE, 10)
    assert [e.event_id for e in again] == ["evt-2", "evt-1"]  # the longest due first

    async with db.transaction() as session:
        retry_at = await inbox.failed(session, "payment", "evt-1", "x" * 900, 3, later)
        await inbox.delivered(session, "payment", "evt-2", "forwarded", later)
    assert retry_at == later + timedelta(seconds=8)
    async with db.sessions() as session:
        (waiting,) = await inbox.pending(session, 10)
    assert (waiting.event_id, waiting.attempts, waiting.next_attempt_at) == ("evt-1", 3, retry_at)
    assert waiting.last_error == "x" * 500  # bounded
    assert await rows(
        db, "SELECT event_id, outcome FROM webhook_events WHERE delivered_at IS NOT NULL"
    ) == [("evt-2", "forwarded")]

    async with db.transaction() as session:  # the back-off stops doubling at five minutes
        retry_at = await inbox.failed(session, "payment", "evt-1", "down", 30, later)
    assert retry_at == later + inbox.MAX_BACKOFF


async def test_an_event_id_reused_with_another_payload_is_kept_apart_for_operators(
    db: Database,
) -> None:
    later = T0 + timedelta(minutes=1)
    async with db.transaction() as session:
        assert await inbox.record(session, event("evt-1"), T0, T0) == "new"
    other_money = event("evt-1", payload='{"a": 2}')
    other_order = event("evt-1", order_id="o-2")
    async with db.transaction() as session:
        assert await inbox.record(session, other_money, later, later) == "reused"
        assert await inbox.record(session, other_money, later, later) == "reused"  # retried
        assert await inbox.record(session, other_order, later, later) == "reused"
        assert await inbox.record(session, event("evt-1", "carrier", '{"a": 2}'), T0, T0) == "new"

    # the first event is untouched and still the one the relay delivers
    assert await rows(
        db, "SELECT source, order_id, payload FROM webhook_events ORDER BY source"
    ) == [("carrier", "o-1", '{"a": 2}'), ("payment", "o-1", '{"a": 1}')]
    async with db.sessions() as session:
        listed = await inbox.reused(session, 10)
        assert [e.event_id for e in await inbox.pending(session, 10)] == ["evt-1", "evt-1"]
    assert [(e.source, e.order_id, e.payload) for e in listed] == [
        ("payment", "o-2", '{"a": 1}'),  # newest first (ties: the later write first)
        ("payment", "o-1", '{"a": 2}'),
    ]  # once per distinct payload
    assert {(e.first_order_id, e.first_payload) for e in listed} == {("o-1", '{"a": 1}')}
