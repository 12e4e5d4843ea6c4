"""Shops (多商户): an admin opens one; anyone reads its name and customer-service phone; its
merchant and admins read its settlement (结算)."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Role, User
from api.deps import Admin, CurrentUser, DatabaseDep, SessionDep, SettingsDep, require_role
from api.errors import Problem
from api.views import csv_download, csv_text
from domain.errors import ErrorCode
from domain.models import QueryTime, Shop, sane_time
from store import settlement, shops
from store.db import Database

router = APIRouter(tags=["shops"])
ShopPath = Path(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")


@router.post("/admin/shops", status_code=201, response_model=Shop)
async def create_shop(body: Shop, _: Admin, db: DatabaseDep, settings: SettingsDep) -> Shop:
    """A new shop; the same body again answers the shop, another body under its id is 409."""
    async with db.transaction() as session:
        return await shops.create(session, body, datetime.now(UTC), settings.service_phone)


@router.get("/shops/{shop_id}", response_model=Shop)
async def get_shop(session: SessionDep, settings: SettingsDep, shop_id: str = ShopPath) -> Shop:
    shop = await shops.get(session, shop_id, settings.service_phone)
    if shop is None:
        raise Problem(ErrorCode.NOT_FOUND, f"no shop {shop_id}")
    return shop


class SettlementOut(BaseModel):
    """A shop's money for [from, to): payments and refunds booked in it (failed refunds not)."""

    shop_id: str
    from_: datetime = Field(alias="from")
    to: datetime
    paid_cents: int
    refunded_cents: int
    net_cents: int
    orders: int  # orders with a payment or a refund booked in the period

    model_config = ConfigDict(populate_by_name=True)


MAX_SETTLEMENT_DAYS = 400
From = Annotated[QueryTime, Query(alias="from", description="inclusive, RFC 3339")]
To = Annotated[QueryTime, Query(alias="to", description="exclusive, RFC 3339")]


async def period(
    session: AsyncSession, user: User, shop_id: str, start: datetime, end: datetime
) -> tuple[datetime, datetime]:
    """Its own shop's merchant and admins only (another shop is 404 to a merchant); a
    period that runs forward, at most 400 days."""
    require_role(user, Role.MERCHANT, Role.ADMIN)
    if user.only_shop not in (None, shop_id) or not await shops.exists(session, shop_id):
        raise Problem(ErrorCode.NOT_FOUND, f"no shop {shop_id}")
    try:
        start, end = sane_time(start), sane_time(end)
    except ValueError as err:
        raise Problem(ErrorCode.VALIDATION, f"from/to: {err}") from None
    if not start < end <= start + timedelta(days=MAX_SETTLEMENT_DAYS):
        raise Problem(
            ErrorCode.VALIDATION, f"to: after from, at most {MAX_SETTLEMENT_DAYS} days after it"
        )
    return start, end


@router.get(
    "/shops/{shop_id}/settlement",
    response_model=SettlementOut,
    response_model_by_alias=True,
)
async def get_settlement(
    user: CurrentUser, session: SessionDep, start: From, end: To, shop_id: str = ShopPath
) -> SettlementOut:
    start, end = await period(session, user, shop_id, start, end)
    sums = await settlement.totals(session, shop_id, start, end)
    return SettlementOut(
        shop_id=shop_id,
        from_=start,
        to=end,
        paid_cents=sums.paid_cents,
        refunded_cents=sums.refunded_cents,
        net_cents=sums.net_cents,
        orders=sums.orders,
    )


@router.get(
    "/shops/{shop_id}/settlement.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "one row per order"}},
)
async def settlement_csv(
    user: CurrentUser, db: DatabaseDep, start: From, end: To, shop_id: str = ShopPath
) -> StreamingResponse:
    """The period's orders, one row each, then the totals: streamed from the database."""
    async with db.sessions() as session:
        start, end = await period(session, user, shop_id, start, end)
    return settlement_csv_response(db, shop_id, start, end)


def settlement_csv_response(
    db: Database, shop_id: str, start: datetime, end: datetime
) -> StreamingResponse:
    """The API's and the console's download: the rows leave as they are read."""

    async def rows() -> AsyncIterator[str]:
        paid = refunded = 0
        yield csv_text([("order_id", "paid_cents", "refunded_cents", "net_cents")])
        async with db.sessions() as session:
            async for line in settlement.by_order(session, shop_id, start, end):
                paid, refunded = paid + line.paid_cents, refunded + line.refunded_cents
                cents = (line.paid_cents, line.refunded_cents, line.net_cents)
                yield csv_text([(line.order_id, *cents)])
        yield csv_text([("TOTAL", paid, refunded, paid - refunded)])

    return csv_download(rows(), f"settlement-{shop_id}-{start:%Y%m%d}-{end:%Y%m%d}.csv")
