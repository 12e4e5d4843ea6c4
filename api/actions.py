"""What staff do to orders, refunds and cases, as keyword-only functions. The JSON routes
and the console's forms call the same ones, so a refusal reads the same in both. Route
signatures, which dependency injection shapes, stay the routes' own."""

import asyncio
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from api import late_refunds, messaging, views
from api.auth import User
from api.errors import Problem, as_problem
from domain.after_sales import AfterSalesCase, CaseCommand
from domain.errors import ErrorCode
from domain.messages import (
    CloseRequest,
    DecideRefundRequest,
    PackageRequest,
    RetryRefundRequest,
    ShipRequest,
)
from domain.models import OrderState, Refund, RefundRequest, RefundStatus
from domain.order import shipped_as
from runtime.settings import Settings
from store import cases, orders, payments
from store.db import Database
from workflows.order import OrderWorkflow


async def ship(
    *,
    client: Client,
    db: Database,
    user: User,
    order_id: str,
    package_id: str,
    carrier: str | None = None,
    tracking_no: str | None = None,
) -> OrderState:
    req = ShipRequest(
        package_id=package_id, carrier=carrier, tracking_no=tracking_no, actor=user.actor
    )
    return await messaging.act(client, db, user, order_id, OrderWorkflow.ship, req)


@dataclass(frozen=True)
class ShipRow:
    """One row of a bulk ship: what a single ship takes."""

    order_id: str
    package_id: str
    carrier: str | None = None
    tracking_no: str | None = None
    refusal: Problem | None = None  # the row itself was refused as it was read


class ShipResult(BaseModel):
    order_id: str
    package_id: str
    status: Literal["SHIPPED", "REFUSED"]
    detail: str
    code: str | None = None  # a refusal's code, as a single ship would answer


BATCH_CONCURRENCY = 8  # orders shipped at once; one order's rows go one after another


async def ship_batch(
    *, client: Client, db: Database, user: User, rows: list[ShipRow]
) -> list[ShipResult]:
    """Each row as a single ship, in the upload's order; a bad row is refused alone. A row
    whose package already shipped with the same carrier and tracking number is SHIPPED again
    (an upload sent twice ships nothing twice)."""
    results: list[ShipResult | None] = [None] * len(rows)
    by_order: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_order.setdefault(row.order_id, []).append(index)
    gate = asyncio.Semaphore(BATCH_CONCURRENCY)

    async def one(row: ShipRow) -> ShipResult:
        def refused(problem: Problem) -> ShipResult:
            return ShipResult(
                order_id=row.order_id,
                package_id=row.package_id,
                status="REFUSED",
                detail=problem.detail,
                code=problem.code,
            )

        if row.refusal is not None:
            return refused(row.refusal)
        try:
            await ship(
                client=client,
                db=db,
                user=user,
                order_id=row.order_id,
                package_id=row.package_id,
                carrier=row.carrier,
                tracking_no=row.tracking_no,
            )
            detail = "shipped"
        except Exception as err:
            problem = as_problem(err)
            if problem is None:
                raise
            if problem.code != ErrorCode.INVALID_TRANSITION:
                return refused(problem)
            async with db.sessions() as session:
                state = await orders.get(session, row.order_id)
            if state is None or not shipped_as(state, row.package_id, row.carrier, row.tracking_no):
                return refused(problem)
            detail = "already shipped with this tracking number"
        return ShipResult(
            order_id=row.order_id, package_id=row.package_id, status="SHIPPED", detail=detail
        )

    async def order_rows(indexes: list[int]) -> None:
        async with gate:
            for index in indexes:
                results[index] = await one(rows[index])

    await asyncio.gather(*(order_rows(indexes) for indexes in by_order.values()))
    return [r for r in results if r is not None]


async def close(
    *, client: Client, db: Database, user: User, order_id: str, reason: str = ""
) -> OrderState:
    """The merchant closes an unpaid order."""
    req = CloseRequest(reason=reason, actor=user.actor)
    return await messaging.act(client, db, user, order_id, OrderWorkflow.close, req)


async def return_received(
    *, client: Client, db: Database, user: User, order_id: str, package_id: str
) -> OrderState:
    """A rejected package arrived back at its location: its goods go back on hand."""
    req = PackageRequest(package_id=package_id, actor=user.actor)
    return await messaging.act(client, db, user, order_id, OrderWorkflow.confirm_return, req)


async def decide_refund(
    *,
    client: Client,
    db: Database,
    user: User,
    order_id: str,
    request_id: str,
    agree: bool,
    reason: str = "",
) -> RefundRequest:
    """The merchant agrees to a refund request, or refuses it saying why."""
    if not agree and not reason.strip():
        raise Problem(ErrorCode.VALIDATION, "reason: a refusal says why")
    req = DecideRefundRequest(request_id=request_id, agree=agree, reason=reason, actor=user.actor)
    return await messaging.update(client, db, user, order_id, OrderWorkflow.decide_refund, req)


async def retry_refund(
    *, client: Client, db: Database, settings: Settings, user: User, refund_id: str
) -> Refund:
    """A FAILED refund tried again through its channel, with the same refund id: by its
    order's workflow, or, that workflow ended (a payment that came after it), by the
    late-payment workflow. SUCCEEDED or PENDING (the channel has not answered yet); refused
    again, 502 REFUND_FAILED with the channel's reason."""
    async with db.sessions() as session:  # no read transaction held across the answer
        found = await payments.refund_status(session, refund_id)
    if found is None:
        raise Problem(ErrorCode.NOT_FOUND, f"no refund {refund_id}")
    order_id, status = found
    if status != RefundStatus.FAILED:
        raise Problem(ErrorCode.INVALID_TRANSITION, f"refund {refund_id} is {status}")
    req = RetryRefundRequest(refund_id=refund_id, actor=user.actor)
    done = await messaging.try_update(client, order_id, OrderWorkflow.retry_refund, req)
    if done is None:
        done = await late_refunds.retry(client, db, settings.task_queue, refund_id)
    if done is None:  # the order's own refund, and its workflow has ended: as any action
        done = await messaging.update(client, db, user, order_id, OrderWorkflow.retry_refund, req)
    if done.status == RefundStatus.FAILED:
        raise Problem(
            ErrorCode.REFUND_FAILED,
            f"the channel refused refund {done.id} again: {done.failure}",
            refund_id=done.id,
            failure=done.failure,
        )
    return done


async def visible_case(session: AsyncSession, user: User, case_id: str) -> AfterSalesCase:
    """A case as this user may see it; another buyer's is a 404."""
    case = await cases.get(session, case_id)
    if case is None or not user.can_see(case.buyer_id, case.shop_id):
        raise Problem(ErrorCode.NOT_FOUND, f"no case {case_id}")
    return views.case_for(user, case)


async def case_action(
    *, client: Client, db: Database, user: User, case_id: str, cmd: CaseCommand
) -> AfterSalesCase:
    """One action on a case; another buyer's case is a 404, as a read of it would be."""
    async with db.sessions() as session:
        await visible_case(session, user, case_id)
    return views.case_for(user, await messaging.case_update(client, db, user, case_id, cmd))
