"""The console's settlement page (结算): a shop's money for a period, and its CSV."""

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api import shops as shops_api
from api.console.orders import _day
from api.console.pages import Filter, page, shop_names, signed_in
from api.console.session import Operator
from api.deps import DatabaseDep, SettingsDep
from api.errors import Problem
from domain.models import DEFAULT_SHOP
from store import settlement

router = APIRouter(prefix="/console", include_in_schema=False)
FromFilter = Annotated[str | None, Query(alias="from", max_length=64)]


async def _chosen(
    db: DatabaseDep, op: Operator, shop_id: str | None, start: str | None, end: str | None
) -> tuple[str, datetime, datetime, dict[str, str]]:
    """The shop (a merchant's own), and the days from and to, both included, in the
    operator's zone (this month so far, unless chosen)."""
    today = datetime.now(op.zone).date()
    form = {
        "shop_id": op.user.only_shop or shop_id or DEFAULT_SHOP,
        "from": start or today.replace(day=1).isoformat(),
        "to": end or today.isoformat(),
    }
    first, last = _day("from", form["from"], op), _day("to", form["to"], op, end=True)
    assert first is not None and last is not None
    async with db.sessions() as session:
        first, last = await shops_api.period(session, op.user, form["shop_id"], first, last)
    return form["shop_id"], first, last, form


@router.get("/settlement")
async def settlement_page(
    request: Request,
    settings: SettingsDep,
    db: DatabaseDep,
    shop_id: Filter = None,
    start: FromFilter = None,
    to: Filter = None,
) -> Response:
    async def show(op: Operator) -> Response:
        shown = {"shops": await shop_names(db, op)}
        try:
            shop, first, last, form = await _chosen(db, op, shop_id, start, to)
        except Problem as problem:
            form = {"shop_id": shop_id or "", "from": start or "", "to": to or ""}
            return page(
                request,
                "settlement.html",
                problem.status,
                op,
                form=form,
                error=problem.detail,
                totals=None,
                **shown,
            )
        async with db.sessions() as session:
            totals = await settlement.totals(session, shop, first, last)
        return page(
            request,
            "settlement.html",
            200,
            op,
            form=form,
            totals=totals,
            until=last - timedelta(microseconds=1),
            **shown,
        )

    return await signed_in(request, settings, show)


@router.get("/settlement.csv")
async def settlement_csv(
    request: Request,
    settings: SettingsDep,
    db: DatabaseDep,
    shop_id: Filter = None,
    start: FromFilter = None,
    to: Filter = None,
) -> Response:
    async def download(op: Operator) -> Response:
        shop, first, last, _ = await _chosen(db, op, shop_id, start, to)
        return shops_api.settlement_csv_response(db, shop, first, last)

    return await signed_in(request, settings, download, counts=False)
