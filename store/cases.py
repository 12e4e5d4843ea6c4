"""After-sales case snapshots: saved by the case's workflow, read and listed by the API."""

from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.after_sales import AfterSalesCase, CaseStatus
from store.orders import decode_cursor, encode_cursor
from store.sql import upsert_newer
from store.tables import CaseRow


async def save(session: AsyncSession, case: AfterSalesCase) -> None:
    """Write the snapshot if it is newer than the stored one (a retried save is a no-op)."""
    values: dict[str, Any] = {
        "status": case.status.value,
        "version": case.version,
        "snapshot": case.model_dump(mode="json"),
        "updated_at": case.updated_at,
    }
    await upsert_newer(
        session,
        CaseRow,
        conflict_on="id",
        insert={
            "id": case.id,
            "order_id": case.order_id,
            "buyer_id": case.buyer_id,
            "type": case.type.value,
            "created_at": case.created_at,
            **values,
        },
        update=values,
        where=CaseRow.version < case.version,
    )


async def get(session: AsyncSession, case_id: str) -> AfterSalesCase | None:
    row = await session.get(CaseRow, case_id)
    return AfterSalesCase.model_validate(row.snapshot) if row else None


async def page(
    session: AsyncSession,
    *,
    buyer_id: str | None,
    status: CaseStatus | None,
    order_id: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[AfterSalesCase], str | None]:
    """Newest first, keyset-paginated on (created_at, id). Raises ValueError on a bad cursor."""
    q = select(CaseRow)
    if buyer_id is not None:
        q = q.where(CaseRow.buyer_id == buyer_id)
    if status is not None:
        q = q.where(CaseRow.status == status.value)
    if order_id is not None:
        q = q.where(CaseRow.order_id == order_id)
    if cursor:
        at, cid = decode_cursor(cursor)
        q = q.where(or_(CaseRow.created_at < at, and_(CaseRow.created_at == at, CaseRow.id < cid)))
    rows = list(
        await session.scalars(
            q.order_by(CaseRow.created_at.desc(), CaseRow.id.desc()).limit(limit + 1)
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return [AfterSalesCase.model_validate(r.snapshot) for r in rows], nxt
