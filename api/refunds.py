"""Refunds before shipment (SPEC §6.1): the buyer asks, the merchant agrees or refuses; an
admin retries a refund the channel refused."""

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from api import actions, messaging
from api.deps import (
    Admin,
    Buyer,
    CurrentUser,
    DatabaseDep,
    Merchant,
    SessionDep,
    SettingsDep,
    TemporalDep,
)
from api.orders import IdempotencyKey, ReasonBody, visible
from domain.messages import RefundLinesRequest
from domain.models import MAX_LINES, LineRequest, Refund, RefundRequest, RefundStatus
from workflows.order import OrderWorkflow

router = APIRouter(tags=["refunds"])


class RefundBody(BaseModel):
    lines: list[LineRequest] = Field(min_length=1, max_length=MAX_LINES)
    reason: str = Field("", max_length=500)


@router.post("/orders/{order_id}/refunds", status_code=201, response_model=RefundRequest)
async def request_refund(
    order_id: str,
    body: RefundBody,
    user: Buyer,
    client: TemporalDep,
    db: DatabaseDep,
    key: IdempotencyKey = None,
) -> RefundRequest:
    req = RefundLinesRequest(
        request_id="RR" + messaging.keyed_id(key, order_id, length=14),  # same key: same request
        lines=body.lines,
        reason=body.reason,
        actor=user.actor,
    )
    return await messaging.update(client, db, user, order_id, OrderWorkflow.request_refund, req)


@router.get("/orders/{order_id}/refunds", response_model=list[RefundRequest])
async def list_refunds(
    order_id: str, user: CurrentUser, session: SessionDep
) -> list[RefundRequest]:
    return (await visible(session, user, order_id)).refund_requests


@router.post("/orders/{order_id}/refunds/{request_id}/agree", response_model=RefundRequest)
async def agree(
    order_id: str,
    request_id: str,
    user: Merchant,
    client: TemporalDep,
    db: DatabaseDep,
    body: ReasonBody | None = None,
) -> RefundRequest:
    return await actions.decide_refund(
        client=client,
        db=db,
        user=user,
        order_id=order_id,
        request_id=request_id,
        agree=True,
        reason=body.reason if body else "",
    )


@router.post("/orders/{order_id}/refunds/{request_id}/refuse", response_model=RefundRequest)
async def refuse(
    order_id: str,
    request_id: str,
    body: ReasonBody,
    user: Merchant,
    client: TemporalDep,
    db: DatabaseDep,
) -> RefundRequest:
    return await actions.decide_refund(
        client=client,
        db=db,
        user=user,
        order_id=order_id,
        request_id=request_id,
        agree=False,
        reason=body.reason,
    )


@router.post("/admin/refunds/{refund_id}/retry", response_model=Refund, tags=["admin"])
async def retry_refund(
    refund_id: str,
    user: Admin,
    client: TemporalDep,
    db: DatabaseDep,
    settings: SettingsDep,
    response: Response,
) -> Refund:
    """A FAILED refund tried again through its channel, with the same refund id: by its
    order's workflow, or, that workflow ended (a payment that came after it), by the
    late-payment workflow, answering 502 REFUND_FAILED when the channel refuses again."""
    done = await actions.retry_refund(
        client=client, db=db, settings=settings, user=user, refund_id=refund_id
    )
    if done.status == RefundStatus.PENDING:
        response.status_code = 202  # the channel has not answered yet; the order will show it
    return done
