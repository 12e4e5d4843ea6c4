"""A day's volume from the console: the selected orders' packing slips (a print view) and
shipping sheet (a CSV to fill in), and shipping many packages from that sheet uploaded."""

from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import Response

from api import actions, packages, views
from api.console.pages import Csrf, act_page, page, signed_in
from api.console.session import Operator
from api.deps import DatabaseDep, SettingsDep, TemporalDep
from api.errors import Problem
from domain.actions import order_actions
from domain.errors import ErrorCode
from domain.models import OrderState
from store import orders
from store.db import Database

router = APIRouter(prefix="/console", include_in_schema=False)
MAX_SELECTED = 100
Selected = Annotated[list[str] | None, Query(alias="order")]


async def _selected(db: Database, op: Operator, order_ids: list[str]) -> list[OrderState]:
    """The selected orders this operator may see, in the order selected."""
    if not order_ids:
        raise Problem(ErrorCode.VALIDATION, "select at least one order")
    if len(order_ids) > MAX_SELECTED or any(len(i) > 64 for i in order_ids):
        raise Problem(ErrorCode.VALIDATION, f"select at most {MAX_SELECTED} orders")
    async with db.sessions() as session:
        found = await orders.get_many(session, list(dict.fromkeys(order_ids)))
    seen = {o.id: o for o in found if op.user.can_see(o.buyer_id, o.shop_id)}
    missing = [i for i in order_ids if i not in seen]
    if missing:
        raise Problem(ErrorCode.NOT_FOUND, f"no order {missing[0]}")
    return [seen[i] for i in dict.fromkeys(order_ids)]


@router.get("/packing-slips")
async def packing_slips(
    request: Request, settings: SettingsDep, db: DatabaseDep, order: Selected = None
) -> Response:
    """One page per selected order to print and put in its box: the address, and each
    package's lines (what is still to go)."""

    async def show(op: Operator) -> Response:
        return page(request, "slips.html", 200, op, orders=await _selected(db, op, order or []))

    return await signed_in(request, settings, show)


@router.get("/orders/ship-sheet.csv")
async def ship_sheet(
    request: Request, settings: SettingsDep, db: DatabaseDep, order: Selected = None
) -> Response:
    """The selected orders' packages that may ship now, one row each with the carrier and
    tracking number left blank: filled in, it is what the bulk ship takes."""

    async def download(op: Operator) -> Response:
        rows = [
            (o.id, package_id, "", "")
            for o in await _selected(db, op, order or [])
            for package_id in order_actions(o, op.user.role.value).ship
        ]
        return views.csv_download([views.csv_text([packages.COLUMNS, *rows])], "ship-sheet.csv")

    return await signed_in(request, settings, download, counts=False)


@router.post("/packages/ship-batch")
async def ship_batch(
    request: Request,
    settings: SettingsDep,
    db: DatabaseDep,
    client: TemporalDep,
    sheet: Annotated[UploadFile | None, File()] = None,
    csrf: Csrf = None,
) -> Response:
    """The filled-in sheet, each row shipped as the API's bulk ship does; the page lists what
    each row came to."""
    results: list[actions.ShipResult] = []

    async def do(op: Operator) -> object:
        if sheet is None:
            raise Problem(ErrorCode.VALIDATION, "choose the CSV file to upload")
        rows = packages.parse(await sheet.read(packages.MAX_BYTES + 1))
        results.extend(await actions.ship_batch(client=client, db=db, user=op.user, rows=rows))
        return results

    async def shipped(op: Operator) -> Response:
        return page(request, "shipped.html", 200, op, results=results)

    async def refused(op: Operator, problem: Problem) -> Response:
        return page(request, "shipped.html", problem.status, op, error=problem.detail)

    return await act_page(request, settings, csrf, do, shipped, refused)
