"""The console's after-sales queue and case page, and the case actions."""

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from api import actions
from api import after_sales as cases_api
from api.auth import Role
from api.console.pages import (
    DONE,
    PAGE_SIZE,
    STAFF,
    Csrf,
    Filter,
    Text,
    act,
    choice,
    page,
    refused,
    shop_names,
    signed_in,
)
from api.console.session import Operator
from api.deps import BlobsDep, DatabaseDep, SettingsDep, TemporalDep
from api.errors import Problem
from api.orders import list_shop
from domain.actions import case_actions
from domain.after_sales import CaseAction, CaseCommand, CaseStatus
from domain.carriers import CARRIERS
from domain.errors import ErrorCode
from domain.models import MAX_AMOUNT_CENTS, money
from store import cases

router = APIRouter(prefix="/console", include_in_schema=False)
MAX_VERSION = 1_000_000


@router.get("/after-sales")
async def cases_page(
    request: Request,
    settings: SettingsDep,
    db: DatabaseDep,
    status: Filter = None,
    order_id: Filter = None,
    shop_id: Filter = None,
    number: Annotated[int, Query(alias="page", ge=1, le=cases.MAX_QUEUE_OFFSET // PAGE_SIZE)] = 1,
) -> Response:
    async def show(op: Operator) -> Response:
        shown: dict[str, Any] = {
            "chosen": status or "",
            "order_id": order_id or "",
            "shop_id": shop_id or "",
            "shops": await shop_names(db, op),
            "statuses": list(CaseStatus),
            "page": number,
        }
        try:
            wanted = choice("status", status, CaseStatus)
            shop = list_shop(op.user, shop_id or None)
        except Problem as problem:
            return page(
                request, "cases.html", problem.status, op, items=[], error=problem.detail, **shown
            )
        async with db.sessions() as session:
            items, more = await cases.queue(
                session,
                status=wanted,
                order_id=order_id or None,
                shop_id=shop,
                limit=PAGE_SIZE,
                offset=(number - 1) * PAGE_SIZE,
            )
        return page(request, "cases.html", 200, op, items=items, more=more, **shown)

    return await signed_in(request, settings, show)


async def _case_page(
    request: Request,
    op: Operator,
    db: DatabaseDep,
    case_id: str,
    status: int = 200,
    error: str = "",
    done: str = "",
    typed: dict[str, str] | None = None,
) -> Response:
    async with db.sessions() as session:
        case = await actions.visible_case(session, op.user, case_id)
    return page(
        request,
        "case.html",
        status,
        op,
        case=case,
        actions=case_actions(case, op.user.role.value),
        carriers=CARRIERS,
        error=error,
        done=DONE.get(done, ""),
        typed=typed or {},
    )


@router.get("/after-sales/{case_id}")
async def case_page(
    request: Request, case_id: str, settings: SettingsDep, db: DatabaseDep, done: Filter = None
) -> Response:
    async def show(op: Operator) -> Response:
        return await _case_page(request, op, db, case_id, done=done or "")

    return await signed_in(request, settings, show)


@router.get("/after-sales/{case_id}/images/{sha256}")
async def case_image(
    request: Request,
    case_id: str,
    sha256: str,
    settings: SettingsDep,
    db: DatabaseDep,
    blobs: BlobsDep,
) -> Response:
    async def show(op: Operator) -> Response:
        async with db.sessions() as session:
            return await cases_api.get_image(case_id, sha256, op.user, session, blobs)

    return await signed_in(request, settings, show, counts=False)


def _version(raw: str) -> int:
    """The case version the form was made from (a hidden field): a page's own, or refused."""
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_VERSION:
        raise Problem(ErrorCode.VALIDATION, "version: the case's version, as the page gave it")
    return int(raw)


def _cents(raw: str) -> int:
    """An amount in yuan as typed ("12.5", "12.50"): integer cents, within bounds."""
    try:
        amount = Decimal(raw.strip().removeprefix("¥"))
    except InvalidOperation:
        raise Problem(ErrorCode.VALIDATION, "amount: yuan, e.g. 12.50") from None
    cents = amount * 100
    if not amount.is_finite() or cents != cents.to_integral_value():
        raise Problem(ErrorCode.VALIDATION, "amount: yuan with at most two decimals")
    if not 1 <= cents <= MAX_AMOUNT_CENTS:
        raise Problem(ErrorCode.VALIDATION, f"amount: from ¥0.01 to {money(MAX_AMOUNT_CENTS)}")
    return int(cents)


@router.post("/after-sales/{case_id}/{action}")
async def case_action(
    request: Request,
    case_id: str,
    action: str,
    settings: SettingsDep,
    db: DatabaseDep,
    client: TemporalDep,
    version: Annotated[str, Form(max_length=12)] = "",
    reason: Text = "",
    amount: Annotated[str, Form(max_length=32)] = "",
    decision: Annotated[str, Form(max_length=16)] = "",
    carrier: Annotated[str, Form(max_length=64)] = "",
    tracking_no: Annotated[str, Form(max_length=128)] = "",
    csrf: Csrf = None,
) -> Response:
    plain = {a.value for a in cases_api.PlainAction}
    own_body = {CaseAction.PROPOSE.value, CaseAction.RULE.value, CaseAction.RESHIP.value}
    if action not in plain | own_body:
        return refused(request, Problem(ErrorCode.NOT_FOUND, f"no case action {action}"))

    async def do(op: Operator) -> object:
        cmd = CaseCommand(
            action=CaseAction(action),
            version=_version(version),
            actor=op.user.actor,
            reason=reason,
        )
        if action == CaseAction.PROPOSE:
            body = cases_api.ProposeBody(version=cmd.version, amount_cents=_cents(amount))
            cmd = cmd.model_copy(update={"amount_cents": body.amount_cents})
        if action == CaseAction.RULE:
            ruling = cases_api.RuleBody(version=cmd.version, decision=decision, note=reason)
            cmd = cmd.model_copy(update={"decision": ruling.decision})
        if action == CaseAction.RESHIP:
            sent = cases_api.ReturnBody(
                version=cmd.version, carrier=carrier, tracking_no=tracking_no.strip()
            )
            cmd = cmd.model_copy(update={"carrier": sent.carrier, "tracking_no": sent.tracking_no})
        return await actions.case_action(
            client=client, db=db, user=op.user, case_id=case_id, cmd=cmd
        )

    async def again(op: Operator, problem: Problem) -> Response:
        typed = {"action": action, "reason": reason, "amount": amount, "decision": decision}
        typed |= {"carrier": carrier, "tracking_no": tracking_no}
        return await _case_page(
            request, op, db, case_id, problem.status, problem.detail, typed=typed
        )

    roles = (Role.ADMIN,) if action == CaseAction.RULE else STAFF
    back = f"/console/after-sales/{case_id}"
    return await act(request, settings, csrf, do, f"case-{action}", back, again, roles)
