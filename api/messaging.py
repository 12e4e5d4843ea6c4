"""Sending one message to an order's workflow and mapping what can go wrong on the way."""

import contextlib
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from api.auth import User
from api.errors import Problem, as_problem, from_failure
from domain.after_sales import AfterSalesCase, CaseCommand
from domain.errors import ErrorCode
from domain.messages import OrderReceipt, OrderWorkflowInput, PlaceOrderInput, order_input
from domain.models import OrderState
from domain.order import placement_of
from domain.stock import quantities
from runtime.settings import Settings
from store import cases, orders, placement
from store.db import Database
from workflows import details, ids
from workflows.after_sales import AfterSalesWorkflow
from workflows.order import OrderWorkflow

Req = TypeVar("Req")
Res = TypeVar("Res")


def keyed_id(idempotency_key: str | None, *scope: str, length: int = 20) -> str:
    """Deterministic per (scope, Idempotency-Key), so the same request twice names the same
    thing; random without a key."""
    if idempotency_key is None:
        return uuid.uuid4().hex[:length]
    raw = "\x00".join((*scope, idempotency_key)).encode()
    return hashlib.sha256(raw).hexdigest()[:length]


def new_order_id(buyer_id: str, idempotency_key: str | None) -> str:
    """Deterministic per (buyer, key), so the same request twice is the same order."""
    return keyed_id(idempotency_key, buyer_id)


async def place(
    client: Client, db: Database, settings: Settings, inp: OrderWorkflowInput, now: datetime
) -> OrderState:
    """Place the order in the database, then start its workflow, which adopts it.

    Placement (price, purchase limits, the unpaid cap, stock held) is one transaction,
    idempotent on the order id: a refused cart starts no workflow and leaves nothing behind.
    A cart placement is sure to refuse is refused from a plain read first. If the workflow
    cannot be started (Temporal down, the API stopped), the same request again starts it;
    reconciliation closes an order left without one."""
    async with db.sessions() as session:
        refusal = await placement.sure_refusal(session, inp)
    if refusal is not None:
        raise refusal
    taken = PlaceOrderInput(**inp.model_dump(), now=now)
    state = await placement.place(db, taken, settings.max_unpaid_orders)
    if not same_request(inp, state):
        raise Problem(
            ErrorCode.IDEMPOTENCY_CONFLICT,
            "this Idempotency-Key was used for a different cart",
            order_id=state.id,
        )
    what = f"order {state.id}"
    await start_placed(client, db, settings.task_queue, [state], what, order_id=state.id)
    return state


async def start_placed(
    client: Client,
    db: Database,
    task_queue: str,
    placed: list[OrderState],
    what: str,
    **names: str,
) -> None:
    """Start the workflows of orders as placed (a retry's may have started already). Temporal
    away: 503 naming what was placed, which the same request starts, or reconciliation
    closes. Each such refusal marks the orders as just asked for, so reconciliation's grace
    runs from a client's last attempt: a client still retrying through an outage finds its
    order open when Temporal is back, and only an abandoned one is closed."""
    try:
        for state in placed:
            if state.version == 1:  # as placed: its workflow may not have started yet
                await _start(client, task_queue, state)
    except (RPCError, RPCTimeoutOrCancelledError, RuntimeError) as err:
        away = as_problem(err)
        if away is None or away.status != 503:
            raise
        with contextlib.suppress(Exception):  # best effort: the database may be away too
            async with db.transaction() as tx:
                await orders.asked_again([s.id for s in placed], datetime.now(UTC), tx)
        raise Problem(
            away.code,
            f"{away.detail}: {what} is placed but not started; the same request with the same"
            " Idempotency-Key starts it, and reconciliation closes it if none comes",
            503,
            **names,
        ) from None


async def _start(client: Client, task_queue: str, state: OrderState) -> None:
    """Start the order's workflow with the placement it adopts (already running: nothing)."""
    lines = [(line.sku, line.quantity) for line in state.lines]
    with contextlib.suppress(WorkflowAlreadyStartedError):  # ended: the database has it
        await client.start_workflow(
            OrderWorkflow.run,
            order_input(state, placement=placement_of(state)),
            id=ids.order_workflow_id(state.id),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(details.start_attributes(state)),
            static_summary=details.summary(state.id, state.buyer_id, lines),
        )


def same_request(inp: OrderWorkflowInput, state: OrderState) -> bool:
    """The order an Idempotency-Key found answers this request: the same cart, or (a reorder,
    whose lines are what could be bought) the same old order."""
    if inp.reorder_of is not None or state.reorder_of is not None:
        return inp.reorder_of == state.reorder_of
    lines = ((line.sku, line.quantity) for line in inp.lines)
    return quantities(lines) == quantities((x.sku, x.quantity) for x in state.lines)


async def _execute(
    handle: WorkflowHandle[Any, Any], handler: UpdateMethodMultiParam[[Any, Req], Res], arg: Req
) -> Res | None:
    """One update; None when the workflow is not running any more (the caller answers from
    the database)."""
    try:
        result: Res = await handle.execute_update(handler, arg)
        return result
    except WorkflowUpdateFailedError as err:
        raise from_failure(err) from None
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
    return None


async def try_update(
    client: Client,
    order_id: str,
    handler: UpdateMethodMultiParam[[OrderWorkflow, Req], Res],
    arg: Req,
) -> Res | None:
    """Send an update to a live order; None when its workflow is not running."""
    return await _execute(client.get_workflow_handle(ids.order_workflow_id(order_id)), handler, arg)


async def update(
    client: Client,
    db: Database,
    user: User,
    order_id: str,
    handler: UpdateMethodMultiParam[[OrderWorkflow, Req], Res],
    arg: Req,
) -> Res:
    """Send an update to a live order; a finished or unknown one answers from the database."""
    handle = client.get_workflow_handle(ids.order_workflow_id(order_id))
    result = await _execute(handle, handler, arg)
    if result is not None:
        return result
    async with db.sessions() as session:
        saved = await orders.get(session, order_id)
    if saved is None or not user.can_see(saved.buyer_id, saved.shop_id):
        raise Problem(ErrorCode.NOT_FOUND, f"no order {order_id}")
    raise Problem(
        ErrorCode.INVALID_TRANSITION, f"order is {saved.status} and no longer takes this action"
    )


async def act(
    client: Client,
    db: Database,
    user: User,
    order_id: str,
    handler: UpdateMethodMultiParam[[OrderWorkflow, Req], OrderReceipt],
    arg: Req,
) -> OrderState:
    """An action on an order: the workflow answers a receipt, the order is the snapshot it
    saved in the same step."""
    done = await update(client, db, user, order_id, handler, arg)
    async with db.sessions() as session:
        state = await orders.get(session, order_id)
    if state is None or state.version < done.version:  # saved before the receipt, always
        raise Problem(ErrorCode.NOT_FOUND, f"no order {order_id} at version {done.version}")
    return state


async def case_update(
    client: Client, db: Database, user: User, case_id: str, cmd: CaseCommand
) -> AfterSalesCase:
    """One action on a live case; a finished one answers from the database (409)."""
    handle = client.get_workflow_handle(ids.case_workflow_id(case_id))
    result = await _execute(handle, AfterSalesWorkflow.act, cmd)
    if result is not None:
        return result
    async with db.sessions() as session:
        saved = await cases.get(session, case_id)
    if saved is None or not user.can_see(saved.buyer_id, saved.shop_id):
        raise Problem(ErrorCode.NOT_FOUND, f"no case {case_id}")
    raise Problem(ErrorCode.INVALID_TRANSITION, f"case is {saved.status} and takes no more actions")
