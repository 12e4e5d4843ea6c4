"""Refunds before shipment (SPEC §6.1): the buyer asks, the merchant agrees or refuses; an
admin retries a refund the channel refused."""

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from api import late_refunds, messaging
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
from api.errors import Problem
from api.orders import IdempotencyKey, ReasonBody, visible
from domain.errors import ErrorCode
from domain.messages import DecideRefundRequest, RefundLinesRequest, RetryRefundRequest
from domain.models import MAX_LINES, LineRequest, Refund, RefundRequest, RefundStatus
from store import payments
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


async def _decide(
    order_id: str,
    request_id: str,
    agree: bool,
    reason: str,
    user: Merchant,
    client: TemporalDep,
    db: DatabaseDep,
) -> RefundRequest:
    req = DecideRefundRequest(request_id=request_id, agree=agree, reason=reason, actor=user.actor)
    return await messaging.update(client, db, user, order_id, OrderWorkflow.decide_refund, req)


@router.post("/orders/{order_id}/refunds/{request_id}/agree", response_model=RefundRequest)
async def agree(
    order_id: str,
    request_id: str,
    user: Merchant,
    client: TemporalDep,
    db: DatabaseDep,
    body: ReasonBody | None = None,
) -> RefundRequest:
    return await _decide(order_id, request_id, True, body.reason if body else "", user, client, db)


@router.post("/orders/{order_id}/refunds/{request_id}/refuse", response_model=RefundRequest)
async def refuse(
    order_id: str,
    request_id: str,
    body: ReasonBody,
    user: Merchant,
    client: TemporalDep,
    db: DatabaseDep,
) -> RefundRequest:
    if not body.reason.strip():
        raise Problem(ErrorCode.VALIDATION, "reason: a refusal says why")
    return await _decide(order_id, request_id, False, body.reason, user, client, db)


@router.post("/admin/refunds/{refund_id}/retry", response_model=Refund, tags=["admin"])
async def retry_refund(
    refund_id: str,
    user: Admin,
    session: SessionDep,
    client: TemporalDep,
    db: DatabaseDep,
    settings: SettingsDep,
    response: Response,
) -> Refund:
    """A FAILED refund tried again through its channel, with the same refund id: by its
    order's workflow, or, that workflow ended (a payment that came after it), by the
    late-payment workflow, answering 502 REFUND_FAILED when the channel refuses again."""
    found = await payments.refund_status(session, refund_id)
    if found is None:
        raise Problem(ErrorCode.NOT_FOUND, f"no refund {refund_id}")
    order_id, status = found
    if status != "FAILED":
        raise Problem(ErrorCode.INVALID_TRANSITION, f"refund {refund_id} is {status}")
    await session.close()  # no read transaction held across the workflow's answer
    req = RetryRefundRequest(refund_id=refund_id, actor=user.actor)
    done = await messaging.try_update(client, order_id, OrderWorkflow.retry_refund, req)
    if done is None:
        done = await late_refunds.retry(client, db, settings.task_queue, refund_id)
    if done is None:  # the order's own refund, and its workflow has ended: as any action
        done = await messaging.update(client, db, user, order_id, OrderWorkflow.retry_refund, req)
    return retried(done, response)


def retried(refund: Refund, response: Response) -> Refund:
    """The retry's real outcome: 200 SUCCEEDED; 202 PENDING (the channel has not answered
    yet; the order shows it when it does); 502 REFUND_FAILED with the channel's reason."""
    if refund.status == RefundStatus.FAILED:
        raise Problem(
            ErrorCode.REFUND_FAILED,
            f"the channel refused refund {refund.id} again: {refund.failure}",
            refund_id=refund.id,
            failure=refund.failure,
        )
    if refund.status == RefundStatus.PENDING:
        response.status_code = 202
    return refund
