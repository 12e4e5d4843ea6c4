"""Which evidence images each case holds: a buyer's quota counts them, the purge lets go of
those no party can need any more (SPEC: disk is bounded per buyer)."""

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.after_sales import ENDED_WITHOUT_REFUND
from domain.errors import DomainError, ErrorCode
from store.sql import insert_ignore
from store.stock import hold_guard
from store.tables import CaseImageRow, CaseRow

IMAGES_GUARD = "#images"  # the guard row of a buyer's evidence images (no SKU is named so)


async def held_bytes(session: AsyncSession, buyer_id: str) -> int:
    used = await session.scalar(
        select(func.coalesce(func.sum(CaseImageRow.size_bytes), 0)).where(
            CaseImageRow.buyer_id == buyer_id, CaseImageRow.purged_at.is_(None)
        )
    )
    return int(used or 0)


async def reserve(
    session: AsyncSession,
    buyer_id: str,
    case_id: str,
    sizes: dict[str, int],
    most: int,
    now: datetime,
) -> None:
    """Record a new case's images against its buyer's quota, or refuse them all (429). One
    buyer's cases are counted one at a time (the guard row is held until the transaction
    ends)."""
    await hold_guard(session, buyer_id, IMAGES_GUARD)
    used, adding = await held_bytes(session, buyer_id), sum(sizes.values())
    if used + adding > most:
        raise DomainError(
            ErrorCode.IMAGE_QUOTA_EXCEEDED,
            f"evidence images: {used} of {most} bytes held already, {adding} more would pass "
            "the quota (images of cases that ended without a refund are freed once deleted)",
            {"held_bytes": used, "adding_bytes": adding, "quota_bytes": most},
        )
    for sha256, size in sizes.items():
        await insert_ignore(
            session,
            CaseImageRow,
            case_id=case_id,
            sha256=sha256,
            buyer_id=buyer_id,
            size_bytes=size,
            stored_at=now,
        )


async def purge_due(
    session: AsyncSession, now: datetime, keep_for: timedelta, unopened_after: timedelta
) -> list[str]:
    """Mark purged the images of cases that ended without a refund `keep_for` ago, and of
    cases that never opened (refused, or their request lost) `unopened_after` their upload;
    return the blobs no remaining case holds."""
    ended = select(CaseRow.id).where(
        CaseRow.status.in_([s.value for s in ENDED_WITHOUT_REFUND]),
        CaseRow.updated_at < now - keep_for,
    )
    opened = select(CaseRow.id)
    due = (
        update(CaseImageRow)
        .where(
            CaseImageRow.purged_at.is_(None),
            or_(
                CaseImageRow.case_id.in_(ended),
                and_(
                    CaseImageRow.case_id.not_in(opened),
                    CaseImageRow.stored_at < now - unopened_after,
                ),
            ),
        )
        .values(purged_at=now)
        .returning(CaseImageRow.sha256)
    )
    freed = set((await session.scalars(due)).all())
    if not freed:
        return []
    still = await session.scalars(
        select(CaseImageRow.sha256).where(
            CaseImageRow.sha256.in_(freed), CaseImageRow.purged_at.is_(None)
        )
    )
    return sorted(freed - set(still.all()))


async def purged(session: AsyncSession, case_id: str) -> Sequence[str]:
    """The images of a case that the purge has taken."""
    rows = await session.scalars(
        select(CaseImageRow.sha256).where(
            CaseImageRow.case_id == case_id, CaseImageRow.purged_at.is_not(None)
        )
    )
    return rows.all()
