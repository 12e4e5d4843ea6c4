"""The callback relay: each inbox event goes to its order's workflow until it lands.

The API records an event, answers its sender, and tries once at once; what Temporal did
not take then (an outage, a timeout) the worker's relay loop takes when it falls due,
backing off up to five minutes and never dropping it. A delivery is a signal, so a second
one of the same event is harmless: the order ignores a notice it has already applied.
"""

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from domain.messages import CarrierNotice, InboxEvent, PaymentNotice, SupplierNotice
from store import inbox
from store.db import Database
from workflows import ids
from workflows.order import OrderWorkflow
from workflows.orphan_payment import OrphanPaymentWorkflow

log = logging.getLogger(__name__)
RPC_TIMEOUT = timedelta(seconds=5)
# how long one delivery by the relay loop may take, the client's own retries included (the
# API's first attempt, which its sender waits for, is bounded by `sender_patience`)
RELAY_PATIENCE = 15.0
FIRST_RETRY = timedelta(seconds=10)  # the inline attempt's grace before the relay may take it
LOUD_AFTER = 10  # failed attempts after which every further one is logged as an error
NOTICES: dict[str, tuple[Any, type[BaseModel]]] = {
    "payment": (OrderWorkflow.payment_received, PaymentNotice),
    "carrier": (OrderWorkflow.carrier_event, CarrierNotice),
    "supplier": (OrderWorkflow.supplier_event, SupplierNotice),
}


class Relay:
    def __init__(
        self,
        db: Database,
        client: Client,
        task_queue: str,
        batch: int = 100,
        sender_patience: float = 2.0,
    ) -> None:
        self.db = db
        self.client = client
        self.task_queue = task_queue
        self.batch = batch
        self.sender_patience = sender_patience

    async def accept(self, event: InboxEvent) -> str:
        """Record the event, then try to deliver it: `duplicate` for an event already
        recorded, `reused` for its id recorded with another payload (kept for operators, not
        delivered), else the delivery's outcome, or `queued` when Temporal did not take it."""
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            receipt = await inbox.record(session, event, now, now + FIRST_RETRY)
        if receipt != "new":
            return receipt
        return await self._attempt(event, self.sender_patience)

    async def run_once(self, now: datetime | None = None) -> int:
        """Deliver what is due (at `now`); the number of events taken."""
        async with self.db.transaction() as session:
            due = await inbox.take_due(session, now or datetime.now(UTC), self.batch)
        for event in due:
            await self._attempt(event, RELAY_PATIENCE)
        return len(due)

    async def run(self, every: float) -> None:
        """The worker's loop: what is due, every `every` seconds (at once while a full
        batch came back)."""
        while True:
            try:
                taken = await self.run_once()
            except Exception:  # the database away: the events wait in it, so do we
                log.exception("callback relay: cannot read the inbox")
                taken = 0
            if taken < self.batch:
                await asyncio.sleep(every)

    async def _attempt(self, event: InboxEvent, patience: float) -> str:
        try:
            outcome = await asyncio.wait_for(self._deliver(event), patience)
        except Exception as err:  # Temporal unreachable or slow: it stays due, backing off
            attempts = event.attempts + 1
            async with self.db.transaction() as session:
                retry_at = await inbox.failed(
                    session,
                    event.source,
                    event.event_id,
                    f"{type(err).__name__}: {err}",
                    attempts,
                    datetime.now(UTC),
                )
            level = logging.ERROR if attempts >= LOUD_AFTER else logging.WARNING
            log.log(
                level,
                "%s callback %s for order %s not delivered (attempt %d, next at %s): %s",
                event.source,
                event.event_id,
                event.order_id,
                attempts,
                retry_at.isoformat(),
                err,
                extra={"order_id": event.order_id},
            )
            return "queued"
        async with self.db.transaction() as session:
            await inbox.delivered(session, event.source, event.event_id, outcome, datetime.now(UTC))
        return outcome

    async def _deliver(self, event: InboxEvent) -> str:
        signal, model = NOTICES[event.source]
        notice = model.model_validate_json(event.payload)
        handle = self.client.get_workflow_handle(ids.order_workflow_id(event.order_id))
        try:
            await handle.signal(signal, notice, rpc_timeout=RPC_TIMEOUT)
            return "forwarded"
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
        if not isinstance(notice, PaymentNotice):
            return "ignored"  # the order has ended: a package's news changes nothing
        await self.client.start_workflow(  # money for an order that has ended goes back
            OrphanPaymentWorkflow.run,
            notice,
            id=ids.orphan_payment_workflow_id(notice.txn_id),
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"Refund late payment {notice.txn_id} for order {notice.order_id}",
            rpc_timeout=RPC_TIMEOUT,
        )
        return "refunding"
