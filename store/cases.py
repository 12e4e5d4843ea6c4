"""After-sales case snapshots: saved by the case's workflow, read and listed by the API."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.after_sales import FINAL, AfterSalesCase, CaseStatus
from store.orders import keyset
from store.sql import upsert_newer
from store.tables import CaseRow


async def save(session: AsyncSession, case: AfterSalesCase) -> None:
    """Write the snapshot if it is newer than the stored one (a retried save is a no-op)."""
    values: dict[str, Any] = {
        "status": case.status.value,
        "version": case.version,
        "snapshot": case.model_dump(mode="json"),
        "updated_at": case.updated_at,
        "deadline": case.deadline,
    }
    await upsert_newer(
        session,
        CaseRow,
        conflict_on="id",
        insert={
            "id": case.id,
            "order_id": case.order_id,
            "buyer_id": case.buyer_id,
            "shop_id": case.shop_id,
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
    shop_id: str | None = None,
) -> tuple[list[AfterSalesCase], str | None]:
    q = select(CaseRow)
    if buyer_id is not None:
        q = q.where(CaseRow.buyer_id == buyer_id)
    if shop_id is not None:
        q = q.where(CaseRow.shop_id == shop_id)
    if status is not None:
        q = q.where(CaseRow.status == status.value)
    if order_id is not None:
        q = q.where(CaseRow.order_id == order_id)
    rows, nxt = await keyset(session, q, CaseRow, limit, cursor)
    return [AfterSalesCase.model_validate(r.snapshot) for r in rows], nxt


MAX_QUEUE_OFFSET = 10_000


async def queue(
    session: AsyncSession,
    *,
    status: CaseStatus | None,
    limit: int,
    offset: int,
    order_id: str | None = None,
    shop_id: str | None = None,
) -> tuple[list[AfterSalesCase], bool]:
    """Open cases (or those in `status`), the nearest deadline first (none: last); and
    whether more follow."""
    if not 0 <= offset <= MAX_QUEUE_OFFSET:
        raise ValueError(f"offset: 0 to {MAX_QUEUE_OFFSET}")
    q = select(CaseRow)
    if status is not None:
        q = q.where(CaseRow.status == status.value)
    else:
        q = q.where(CaseRow.status.not_in([s.value for s in FINAL]))
    if order_id is not None:
        q = q.where(CaseRow.order_id == order_id)
    if shop_id is not None:
        q = q.where(CaseRow.shop_id == shop_id)
    q = q.order_by(CaseRow.deadline.is_(None), CaseRow.deadline, CaseRow.id)
    rows = list(await session.scalars(q.offset(offset).limit(limit + 1)))
    return [AfterSalesCase.model_validate(r.snapshot) for r in rows[:limit]], len(rows) > limit
