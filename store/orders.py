"""Order snapshots and their event log: written together, read for the API."""

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import invalid_transition
from domain.models import CloseReason, OrderEvent, OrderState, OrderStatus, SubStatus
from domain.order import open_case_count, refund_failed
from store.db import Database
from store.sql import insert_ignore, upsert_newer
from store.tables import OrderEventRow, OrderRow, PackageIndexRow, UTCDateTime


class StaleWrite(Exception):
    """A snapshot written by a workflow task that a later task has superseded: the caller's
    transaction must be rolled back (with every effect it wrote)."""


async def save(
    session: AsyncSession,
    state: OrderState,
    event: OrderEvent,
    key: str = "",
    write_seq: int | None = None,
) -> None:
    """Write the snapshot and its event row, in the caller's transaction.

    Idempotent: a retried activity writes the same version again and changes nothing. Writes
    of the workflow (`write_seq`: its run's start and history length) are ordered by it: a
    later task's write replaces what an earlier one wrote of this version and after (its
    event rows too); an earlier task's write arriving late raises StaleWrite. Writes from
    outside the workflow (`write_seq` None) follow the version alone.
    """
    seq = write_seq
    if seq is not None and await _claim(session, state, seq) is None:
        raise StaleWrite(f"order {state.id} v{state.version} at {seq} is superseded")
    snapshot = state.model_dump(mode="json")
    values: dict[str, Any] = {
        "buyer_id": state.buyer_id,
        "status": state.status.value,
        "close_reason": state.close_reason.value if state.close_reason else None,
        "total_cents": state.total_cents,
        "version": state.version,
        "snapshot": snapshot,
        "updated_at": state.updated_at,
        **facets(state),
    }
    if seq is not None:
        values["write_seq"] = seq
    newer = OrderRow.version < state.version if seq is None else OrderRow.write_seq <= seq
    await upsert_newer(
        session,
        OrderRow,
        conflict_on="id",
        insert={
            "id": state.id,
            "shop_id": state.shop_id,
            "checkout_id": state.checkout_id,
            "skus": sku_words(state),
            "created_at": state.created_at,
            **values,
        },
        update=values,
        where=newer,
    )
    await append_event(session, event, key or f"{event.version}:{event.type}", seq or 0)
    if state.packages:
        await _index_packages(session, state)


async def _claim(session: AsyncSession, state: OrderState, seq: int) -> int | None:
    """Lock the order's row for this write; None when a later workflow task wrote it. A write
    that goes back to a version already stored (a later task, or a later attempt of the same
    task, redoing earlier work) first removes the superseded event rows."""
    row = (
        await session.execute(
            select(OrderRow.version, OrderRow.write_seq)
            .where(OrderRow.id == state.id)
            .with_for_update()
        )
    ).first()
    if row is None:
        return seq
    version, stored_seq = row
    if stored_seq > seq:
        return None
    if version >= state.version:  # (a retried attempt of one task has the same history length)
        await session.execute(
            delete(OrderEventRow).where(
                OrderEventRow.order_id == state.id,
                OrderEventRow.version >= state.version,
                OrderEventRow.write_seq <= seq,
            )
        )
    return seq


def sku_words(state: OrderState) -> str:
    """Its lines' SKUs as " A B " (set at placement; an order's SKUs never change)."""
    return "".join(f" {sku}" for sku in sorted({line.sku for line in state.lines})) + " "


def facets(state: OrderState) -> dict[str, Any]:
    """The columns operators filter on, as the snapshot says them."""
    return {
        "sub_statuses": "".join(f" {s.value}" for s in state.sub_statuses) + " ",
        "paid_at": state.payment.paid_at if state.payment else None,
        "refund_failed": refund_failed(state),
        "open_cases": open_case_count(state),
    }


async def append_event(
    session: AsyncSession, event: OrderEvent, key: str, write_seq: int = 0
) -> None:
    await insert_ignore(
        session,
        OrderEventRow,
        order_id=event.order_id,
        event_key=key,
        version=event.version,
        type=event.type,
        actor_kind=event.actor.kind,
        actor_id=event.actor.id,
        at=event.at,
        data=json.loads(json.dumps(event.data, default=str)),
        write_seq=write_seq,
    )


async def _index_packages(session: AsyncSession, state: OrderState) -> None:
    """Keep (carrier, tracking number) -> package findable; one read, writes only changes."""
    rows = {
        r.package_id: r
        for r in await session.scalars(
            select(PackageIndexRow).where(PackageIndexRow.order_id == state.id)
        )
    }
    for p in state.packages:
        row = rows.get(p.id)
        if p.tracking_no and (row is None or row.tracking_no != p.tracking_no):
            await _check_tracking_free(session, p.id, p.carrier, p.tracking_no)
        if row is None:
            session.add(
                PackageIndexRow(
                    package_id=p.id,
                    order_id=state.id,
                    carrier=p.carrier,
                    tracking_no=p.tracking_no,
                    status=p.status.value,
                )
            )
        elif (row.carrier, row.tracking_no, row.status) != (p.carrier, p.tracking_no, p.status):
            row.carrier, row.tracking_no, row.status = p.carrier, p.tracking_no, p.status.value
    await session.flush()


async def _check_tracking_free(
    session: AsyncSession, package_id: str, carrier: str | None, tracking_no: str
) -> None:
    other = await session.scalar(
        select(PackageIndexRow.package_id).where(
            PackageIndexRow.carrier == carrier,
            PackageIndexRow.tracking_no == tracking_no,
            PackageIndexRow.package_id != package_id,
        )
    )
    if other is not None:
        raise invalid_transition(
            "this carrier's tracking number is already used by another package"
        )


async def exists(session: AsyncSession, order_id: str) -> bool:
    return await session.scalar(select(OrderRow.id).where(OrderRow.id == order_id)) is not None


async def get(session: AsyncSession, order_id: str) -> OrderState | None:
    """The stored snapshot, read afresh (one column, no ORM object: the API's hottest read)."""
    snapshot = await session.scalar(select(OrderRow.snapshot).where(OrderRow.id == order_id))
    return OrderState.model_validate(snapshot) if snapshot is not None else None


async def get_many(session: AsyncSession, order_ids: list[str]) -> list[OrderState]:
    """The stored snapshots of these orders, in the order asked for, in one read."""
    rows = await session.execute(
        select(OrderRow.id, OrderRow.snapshot).where(OrderRow.id.in_(order_ids))
    )
    found = {order_id: snapshot for order_id, snapshot in rows}
    return [OrderState.model_validate(found[i]) for i in order_ids if i in found]


async def events(session: AsyncSession, order_id: str) -> list[OrderEvent]:
    rows = await session.scalars(
        select(OrderEventRow).where(OrderEventRow.order_id == order_id).order_by(OrderEventRow.id)
    )
    return [
        OrderEvent.model_validate(
            {
                "order_id": r.order_id,
                "version": r.version,
                "type": r.type,
                "actor": {"kind": r.actor_kind, "id": r.actor_id},
                "at": r.at,
                "data": r.data,
            }
        )
        for r in rows
    ]


async def package(session: AsyncSession, package_id: str) -> PackageIndexRow | None:
    return await session.get(PackageIndexRow, package_id)


async def find_package(
    session: AsyncSession, carrier: str, tracking_no: str
) -> PackageIndexRow | None:
    return await session.scalar(
        select(PackageIndexRow).where(
            PackageIndexRow.carrier == carrier, PackageIndexRow.tracking_no == tracking_no
        )
    )


def encode_cursor(created_at: datetime, order_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), order_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises ValueError on a cursor we did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, order_id = json.loads(raw)
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError("naive time")
        return when.astimezone(UTC), str(order_id)  # out of range in UTC: invalid too
    except Exception as exc:
        raise ValueError("invalid cursor") from exc


async def keyset(
    session: AsyncSession, q: Select[Any], table: Any, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """Rows of `q` newest first, keyset-paginated on (created_at, id). Raises ValueError on a
    cursor we did not make."""
    if cursor:
        at, key = decode_cursor(cursor)
        q = q.where(or_(table.created_at < at, and_(table.created_at == at, table.id < key)))
    rows = list(
        await session.scalars(q.order_by(table.created_at.desc(), table.id.desc()).limit(limit + 1))
    )
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return rows, nxt


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # where an unpaid order sorts by payment time
SORT_KEYS: dict[str, Any] = {
    "placed": OrderRow.created_at,
    "paid": func.coalesce(OrderRow.paid_at, literal(EPOCH, UTCDateTime)),
    "total": OrderRow.total_cents,
}
# "-placed" (newest first) is the default; a name alone is ascending
SORTS = tuple(f"{sign}{name}" for name in SORT_KEYS for sign in ("-", ""))
DEFAULT_SORT = "-placed"


def _sort_value(row: OrderRow, name: str) -> Any:
    if name == "placed":
        return row.created_at
    if name == "paid":
        return row.paid_at or EPOCH
    return row.total_cents


def _encode_sorted(sort: str, value: Any, order_id: str) -> str:
    raw = json.dumps([sort, value.isoformat() if isinstance(value, datetime) else value, order_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_sorted(sort: str, cursor: str) -> tuple[Any, str]:
    """Raises ValueError on a cursor we did not make, or made for another sort."""
    if sort == DEFAULT_SORT:
        return decode_cursor(cursor)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_for, value, order_id = json.loads(raw)
        if made_for != sort or not isinstance(order_id, str):
            raise ValueError("another sort's cursor")
        if sort.lstrip("-") == "total":
            if type(value) is not int:
                raise ValueError("not a total")
            return value, order_id
        when = datetime.fromisoformat(value)
        if when.tzinfo is None:
            raise ValueError("naive time")
        return when.astimezone(UTC), order_id
    except Exception as exc:
        raise ValueError("invalid cursor") from exc


@dataclass(frozen=True)
class OrderFilter:
    """What an order list may be narrowed to (every field optional; all given must hold)."""

    buyer_id: str | None = None
    shop_id: str | None = None
    status: OrderStatus | None = None
    sub_status: SubStatus | None = None
    close_reason: CloseReason | None = None
    placed_from: datetime | None = None  # inclusive
    placed_to: datetime | None = None  # exclusive
    paid_from: datetime | None = None
    paid_to: datetime | None = None
    refund_failed: bool | None = None
    order_error: bool | None = None  # an ORDER_ERROR was recorded
    has_open_case: bool | None = None
    unshipped_paid_before: datetime | None = None  # paid before this and not (all) shipped
    q: str | None = None  # search: see `search`

    def where(self) -> list[ColumnElement[bool]]:
        t, out = OrderRow, []
        if self.q is not None:
            out.append(search(self.q))
        if self.buyer_id is not None:
            out.append(t.buyer_id == self.buyer_id)
        if self.shop_id is not None:
            out.append(t.shop_id == self.shop_id)
        if self.status is not None:
            out.append(t.status == self.status.value)
        if self.sub_status is not None:
            out.append(t.sub_statuses.like(f"% {self.sub_status.value} %"))
        if self.close_reason is not None:
            out.append(t.close_reason == self.close_reason.value)
        for column, low, high in (
            (t.created_at, self.placed_from, self.placed_to),
            (t.paid_at, self.paid_from, self.paid_to),
        ):
            if low is not None:
                out.append(column >= low)
            if high is not None:
                out.append(column < high)
        if self.refund_failed is not None:
            out.append(t.refund_failed.is_(self.refund_failed))
        if self.order_error is not None:
            out.append(t.order_error.is_(self.order_error))
        if self.has_open_case is not None:
            out.append(t.open_cases > 0 if self.has_open_case else t.open_cases == 0)
        if self.unshipped_paid_before is not None:
            out.append(t.status == OrderStatus.PENDING_SHIPMENT.value)
            out.append(t.paid_at < self.unshipped_paid_before)
        return out


MIN_ID_PREFIX = 6


def search(q: str) -> ColumnElement[bool]:
    """What one search box finds, any case: an order id by a prefix of 6 or more, a buyer id by
    a prefix, a SKU of its lines, a tracking number of its packages (whole)."""
    t = OrderRow
    tracked = select(PackageIndexRow.order_id).where(
        PackageIndexRow.tracking_no.in_({q, q.upper()})
    )
    anyof = [
        t.buyer_id.istartswith(q, autoescape=True),
        t.skus.icontains(f" {q} ", autoescape=True),
        t.id.in_(tracked),
    ]
    if len(q) >= MIN_ID_PREFIX:
        anyof.append(t.id.istartswith(q, autoescape=True))
    return or_(*anyof)


async def page(
    session: AsyncSession,
    where: OrderFilter,
    *,
    limit: int,
    cursor: str | None,
    sort: str = DEFAULT_SORT,
) -> tuple[list[OrderState], str | None]:
    """In `sort`'s order (SORTS; ties by id, the same way), keyset-paginated. Raises
    ValueError on an unknown sort or a cursor we did not make for it."""
    if sort not in SORTS:
        raise ValueError(f"sort: one of {', '.join(SORTS)}")
    name, ascending = sort.lstrip("-"), not sort.startswith("-")
    key = SORT_KEYS[name]
    q = select(OrderRow).where(*where.where())
    if cursor:
        value, after = _decode_sorted(sort, cursor)
        if ascending:
            q = q.where(or_(key > value, and_(key == value, OrderRow.id > after)))
        else:
            q = q.where(or_(key < value, and_(key == value, OrderRow.id < after)))
    order = (key.asc(), OrderRow.id.asc()) if ascending else (key.desc(), OrderRow.id.desc())
    rows = list(await session.scalars(q.order_by(*order).limit(limit + 1)))
    more, rows = len(rows) > limit, rows[:limit]
    nxt = None
    if more and rows:
        last = rows[-1]
        value = _sort_value(last, name)
        nxt = (
            encode_cursor(value, last.id)
            if sort == DEFAULT_SORT
            else _encode_sorted(sort, value, last.id)
        )
    return [OrderState.model_validate(r.snapshot) for r in rows], nxt


async def count(session: AsyncSession, where: OrderFilter) -> int:
    """How many orders `where` matches (a list's total)."""
    return int(
        await session.scalar(select(func.count()).select_from(OrderRow).where(*where.where())) or 0
    )


EXPORT_COLUMNS = (
    "id",
    "shop_id",
    "buyer_id",
    "status",
    "sub_statuses",
    "total_cents",
    "paid_cents",
    "refunded_cents",
    "created_at",
    "paid_at",
)


def _rfc3339(at: datetime | None) -> str:
    return "" if at is None else at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _export_row(row: OrderRow) -> tuple[object, ...]:
    snap = row.snapshot
    return (
        row.id,
        row.shop_id,
        row.buyer_id,
        row.status,
        row.sub_statuses.strip(),
        row.total_cents,
        snap.get("paid_cents", 0),
        snap.get("refunded_cents", 0),
        _rfc3339(row.created_at),
        _rfc3339(row.paid_at),
    )


async def export_rows(
    db: Database, where: OrderFilter, batch: int = 1000
) -> AsyncIterator[list[tuple[object, ...]]]:
    """Every order `where` matches, newest first, `batch` rows at a time (keyset: each batch is
    its own short read in its own session, so a long export holds neither a transaction nor
    the whole list)."""
    q = select(OrderRow).where(*where.where())
    cursor: str | None = None
    while True:
        async with db.sessions() as session:
            rows, cursor = await keyset(session, q, OrderRow, batch, cursor)
        if rows:
            yield [_export_row(r) for r in rows]
        if cursor is None:
            return


async def asked_again(order_ids: list[str], now: datetime, session: AsyncSession) -> None:
    """Orders as placed (version 1) whose workflow could not be started just now: their
    `updated_at` moves to `now`, so reconciliation's grace for unstarted placements
    (`in_flight`) counts from this attempt, not from the first."""
    await session.execute(
        update(OrderRow)
        .where(OrderRow.id.in_(order_ids), OrderRow.version == 1)
        .values(updated_at=now)
    )


async def in_flight(
    session: AsyncSession, updated_before: datetime, placed_after: datetime | None = None
) -> list[str]:
    """Orders whose workflow must be running (neither closed nor completed), untouched since
    `updated_before` (and placed after `placed_after`): what reconciliation compares with
    Temporal."""
    query = select(OrderRow.id).where(
        OrderRow.status.not_in([OrderStatus.CLOSED.value, OrderStatus.COMPLETED.value]),
        OrderRow.updated_at < updated_before,
    )
    if placed_after is not None:
        query = query.where(OrderRow.created_at > placed_after)
    return list(await session.scalars(query))


async def note_error(session: AsyncSession, event: OrderEvent, key: str) -> None:
    """ORDER_ERROR: a step the order could not take goes in its event log, and the order is
    flagged for operators (`order_error`); its snapshot is left as the workflow last saved it."""
    await append_event(session, event, key)
    flag = update(OrderRow).where(OrderRow.id == event.order_id).values(order_error=True)
    await session.execute(flag)
