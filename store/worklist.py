"""What waits on an operator, counted for the console's navigation in one statement."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.after_sales import CaseStatus
from domain.models import OrderStatus
from store.tables import CaseRow, OrderRow

# a case waits on the merchant in these (an admin's platform reviews too)
MERCHANTS_TURN = (
    CaseStatus.WAIT_SELLER_AGREE,
    CaseStatus.WAIT_SELLER_RECEIVE,
    CaseStatus.WAIT_SELLER_RESHIP,
)


@dataclass(frozen=True)
class Waiting:
    cases: int  # after-sales cases whose next step is the merchant's (or the platform's)
    unshipped: int  # orders paid before the cut-off and not (all) shipped
    failed_refunds: int  # orders with a refund the channel refused for good


async def waiting(
    session: AsyncSession, shop_id: str | None, unshipped_before: datetime, admin: bool
) -> Waiting:
    """One round trip: three counts, narrowed to the shop when there is one."""
    statuses = [s.value for s in MERCHANTS_TURN]
    if admin:
        statuses.append(CaseStatus.PLATFORM_REVIEW.value)

    def shop(column: Any) -> list[ColumnElement[bool]]:
        return [] if shop_id is None else [column == shop_id]

    cases = select(func.count()).where(CaseRow.status.in_(statuses), *shop(CaseRow.shop_id))
    unshipped = select(func.count()).where(
        OrderRow.status == OrderStatus.PENDING_SHIPMENT.value,
        OrderRow.paid_at < unshipped_before,
        *shop(OrderRow.shop_id),
    )
    failed = select(func.count()).where(OrderRow.refund_failed.is_(True), *shop(OrderRow.shop_id))
    row = (
        await session.execute(
            select(cases.scalar_subquery(), unshipped.scalar_subquery(), failed.scalar_subquery())
        )
    ).one()
    return Waiting(cases=int(row[0]), unshipped=int(row[1]), failed_refunds=int(row[2]))
