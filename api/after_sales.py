"""After-sales cases (SPEC §6.2): open one with evidence images, read, list, act on it."""

import asyncio
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from api import actions, messaging, views
from api.actions import visible_case
from api.auth import User
from api.deps import (
    Admin,
    BlobsDep,
    Buyer,
    CurrentUser,
    DatabaseDep,
    Merchant,
    SessionDep,
    SettingsDep,
    TemporalDep,
)
from api.errors import Problem, first_error
from api.orders import list_shop, visible
from api.views import CaseView, CaseViewPage
from domain import after_sales
from domain.after_sales import (
    MAX_IMAGE_BYTES,
    MAX_IMAGES,
    AfterSalesCase,
    CaseAction,
    CaseCommand,
    CaseStatus,
)
from domain.carriers import CarrierCode
from domain.errors import ErrorCode
from domain.messages import OpenCaseRequest
from domain.models import MAX_AMOUNT_CENTS, MAX_LINES, CaseType, LineRequest, ShopId
from store import case_images, cases, shops
from store.blobs import BlobStore, digest_of, sniff_image
from store.db import Database
from workflows.order import OrderWorkflow

router = APIRouter(tags=["after-sales"])
LINES = TypeAdapter(list[LineRequest])


class CasePage(BaseModel):
    items: list[AfterSalesCase]
    next_cursor: str | None


class VersionBody(BaseModel):
    version: int = Field(ge=1)
    reason: str = Field("", max_length=500)


class ProposeBody(VersionBody):
    amount_cents: int = Field(ge=1, le=MAX_AMOUNT_CENTS)


class ReturnBody(BaseModel):
    version: int = Field(ge=1)
    carrier: CarrierCode  # GET /carriers; any case
    tracking_no: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class RuleBody(BaseModel):
    version: int = Field(ge=1)
    decision: str = Field(pattern=r"^(BUYER|SELLER)$")
    note: str = Field("", max_length=500)


def _lines(raw: str) -> list[LineRequest]:
    try:
        lines = LINES.validate_json(raw)
    except ValidationError as err:
        raise Problem(
            ErrorCode.VALIDATION,
            f'lines: a JSON list of {{"sku", "quantity"}} ({first_error(list(err.errors()))})',
        ) from None
    if not 1 <= len(lines) <= MAX_LINES:
        raise Problem(ErrorCode.VALIDATION, f"lines: 1 to {MAX_LINES} lines")
    return lines


async def _check_images(images: list[UploadFile]) -> None:
    """Every image checked before any is stored: count, size, and type by its first bytes.
    The files stay where the form parser spooled them (on disk past 1 MB): none is read
    into memory whole."""
    if len(images) > MAX_IMAGES:
        raise Problem(ErrorCode.VALIDATION, f"images: at most {MAX_IMAGES}")
    for n, image in enumerate(images):
        if image.size is None or image.size > MAX_IMAGE_BYTES:
            raise Problem(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"images[{n}]: larger than {MAX_IMAGE_BYTES} bytes",
                413,
            )
        head = await image.read(16)
        await image.seek(0)
        if sniff_image(head) is None:
            raise Problem(
                ErrorCode.UNSUPPORTED_MEDIA,
                f"images[{n}] ({image.filename}): not a JPEG, PNG or WebP image",
            )


async def _store_images(
    db: Database,
    blobs: BlobStore,
    buyer_id: str,
    case_id: str,
    images: list[UploadFile],
    quota: int,
    now: datetime,
) -> list[str]:
    """Counted against the buyer's quota first (429, nothing stored), then written."""
    hashes = [await asyncio.to_thread(digest_of, image.file) for image in images]
    sizes = {h: image.size or 0 for h, image in zip(hashes, images, strict=True)}
    async with db.transaction() as tx:
        await case_images.reserve(tx, buyer_id, case_id, sizes, quota, now)
    for image in images:
        await blobs.put_file(image.file)
    return hashes


@router.post("/orders/{order_id}/after-sales", status_code=201, response_model=CaseView)
async def open_case(
    order_id: str,
    user: Buyer,
    session: SessionDep,
    client: TemporalDep,
    db: DatabaseDep,
    blobs: BlobsDep,
    settings: SettingsDep,
    type: Annotated[CaseType, Form()],
    reason: Annotated[str, Form(min_length=1, max_length=200)],
    lines: Annotated[str, Form(max_length=10_000)],
    description: Annotated[str, Form(max_length=2000)] = "",
    images: Annotated[list[UploadFile] | None, File()] = None,
) -> AfterSalesCase:
    wanted = _lines(lines)
    await _check_images(images or [])
    state = await visible(session, user, order_id)
    phone = await _service_phone(session, state.shop_id, settings.service_phone)
    await session.close()  # no read transaction held across the workflow's answer
    # the order's own rule, checked first so a refused case stores no image
    now = datetime.now(UTC)
    after_sales.check_can_open(state, wanted, now, type)
    case_id = f"AS{uuid.uuid4().hex[:14]}"
    hashes = await _store_images(
        db, blobs, user.id, case_id, images or [], settings.max_image_bytes_per_buyer, now
    )
    req = OpenCaseRequest(
        case_id=case_id,
        type=type,
        reason=reason,
        description=description,
        lines=wanted,
        images=list(dict.fromkeys(hashes)),
        service_phone=phone,
        actor=user.actor,
    )
    return await messaging.update(client, db, user, order_id, OrderWorkflow.open_case, req)


async def _service_phone(session: AsyncSession, shop_id: str, fallback: str) -> str:
    """The customer-service number a case shows: its shop's."""
    shop = await shops.get(session, shop_id, fallback)
    return shop.service_phone if shop is not None else fallback


@router.get("/after-sales/{case_id}", response_model=CaseView)
async def get_case(case_id: str, user: CurrentUser, session: SessionDep) -> AfterSalesCase:
    return await visible_case(session, user, case_id)


@router.get("/after-sales", response_model=CaseViewPage)
async def list_cases(
    user: CurrentUser,
    session: SessionDep,
    status: CaseStatus | None = None,
    order_id: str | None = Query(None, max_length=64),
    shop_id: ShopId | None = None,
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = Query(None, max_length=200),
) -> CasePage:
    """A buyer's own cases, a merchant's shop's, an admin's all (or one shop's)."""
    buyer_id = user.id if user.role == "buyer" else None
    try:
        items, nxt = await cases.page(
            session,
            buyer_id=buyer_id,
            shop_id=list_shop(user, shop_id),
            status=status,
            order_id=order_id,
            limit=limit,
            cursor=cursor,
        )
    except ValueError as err:
        raise Problem(ErrorCode.VALIDATION, str(err)) from None
    return CasePage(items=[views.case_for(user, c) for c in items], next_cursor=nxt)


@router.get("/after-sales/{case_id}/images/{sha256}")
async def get_image(
    case_id: str, sha256: str, user: CurrentUser, session: SessionDep, blobs: BlobsDep
) -> Response:
    """Only to the case's parties, and only the case's own images."""
    case = await visible_case(session, user, case_id)
    if sha256 in await case_images.purged(session, case_id):
        raise Problem(
            ErrorCode.NOT_FOUND,
            f"image {sha256} of case {case_id} was deleted: the case ended without a refund",
        )
    data = await blobs.get(sha256) if sha256 in case.images else None
    if data is None:
        raise Problem(ErrorCode.NOT_FOUND, f"case {case_id} has no image {sha256}")
    return Response(
        data,
        media_type=sniff_image(data) or "application/octet-stream",
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


@router.post("/after-sales/{case_id}/propose", response_model=CaseView)
async def propose(
    case_id: str,
    body: ProposeBody,
    user: Merchant,
    client: TemporalDep,
    db: DatabaseDep,
) -> AfterSalesCase:
    """The merchant offers a smaller amount; the buyer accepts or declines."""
    cmd = CaseCommand(
        action=CaseAction.PROPOSE,
        version=body.version,
        actor=user.actor,
        reason=body.reason,
        amount_cents=body.amount_cents,
    )
    return await actions.case_action(client=client, db=db, user=user, case_id=case_id, cmd=cmd)


@router.post("/after-sales/{case_id}/return-shipment", response_model=CaseView)
async def return_shipment(
    case_id: str,
    body: ReturnBody,
    user: Buyer,
    client: TemporalDep,
    db: DatabaseDep,
) -> AfterSalesCase:
    cmd = _shipment(CaseAction.RETURN_SHIPMENT, body, user)
    return await actions.case_action(client=client, db=db, user=user, case_id=case_id, cmd=cmd)


def _shipment(action: CaseAction, body: ReturnBody, user: User) -> CaseCommand:
    """A case action that sends goods: the buyer's return, the merchant's replacement."""
    return CaseCommand(
        action=action,
        version=body.version,
        actor=user.actor,
        carrier=body.carrier,
        tracking_no=body.tracking_no,
    )


@router.post("/after-sales/{case_id}/rule", response_model=CaseView)
async def rule(
    case_id: str,
    body: RuleBody,
    user: Admin,
    client: TemporalDep,
    db: DatabaseDep,
) -> AfterSalesCase:
    """The platform steps in (客服介入): for the buyer (agreed) or the seller (closed)."""
    cmd = CaseCommand(
        action=CaseAction.RULE,
        version=body.version,
        actor=user.actor,
        reason=body.note,
        decision=body.decision,
    )
    return await actions.case_action(client=client, db=db, user=user, case_id=case_id, cmd=cmd)


@router.post("/after-sales/{case_id}/reship", response_model=CaseView)
async def reship(
    case_id: str,
    body: ReturnBody,
    user: Merchant,
    client: TemporalDep,
    db: DatabaseDep,
) -> AfterSalesCase:
    """An exchange (换货) whose goods came back: the merchant ships the replacement, taking the
    units from stock at the locations they first shipped from (409 OUT_OF_STOCK when there
    are too few: nothing is taken; `convert-to-refund` then refunds them instead). The
    replacement is a package of the order (`replacement_for`), tracked like any other."""
    cmd = _shipment(CaseAction.RESHIP, body, user)
    return await actions.case_action(client=client, db=db, user=user, case_id=case_id, cmd=cmd)


class PlainAction(StrEnum):
    """Actions that carry only a version and an optional reason. The merchant's: agree,
    reject (with a reason), confirm-return, convert-to-refund (an exchange that cannot be
    reshipped); the buyer's: accept-proposal, decline-proposal, escalate, withdraw,
    confirm-receipt (an exchange's replacement arrived). Whose turn it is, is the case's rule
    (403 otherwise)."""

    AGREE = CaseAction.AGREE.value
    REJECT = CaseAction.REJECT.value
    CONFIRM_RETURN = CaseAction.CONFIRM_RETURN.value
    CONVERT_TO_REFUND = CaseAction.CONVERT_TO_REFUND.value
    CONFIRM_RECEIPT = CaseAction.CONFIRM_RECEIPT.value
    ACCEPT_PROPOSAL = CaseAction.ACCEPT_PROPOSAL.value
    DECLINE_PROPOSAL = CaseAction.DECLINE_PROPOSAL.value
    ESCALATE = CaseAction.ESCALATE.value
    WITHDRAW = CaseAction.WITHDRAW.value


@router.post("/after-sales/{case_id}/{action}", response_model=CaseView)
async def plain_action(
    case_id: str,
    action: PlainAction,
    body: VersionBody,
    user: CurrentUser,
    client: TemporalDep,
    db: DatabaseDep,
) -> AfterSalesCase:
    """Declared last: the actions with their own bodies (propose, return-shipment, rule,
    reship) match first."""
    cmd = CaseCommand(
        action=CaseAction(action.value), version=body.version, actor=user.actor, reason=body.reason
    )
    return await actions.case_action(client=client, db=db, user=user, case_id=case_id, cmd=cmd)
