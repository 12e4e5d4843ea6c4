"""Packages: Kepler purchase once the cancel window has passed, the supplier's and the
carrier's news, rejection (拒收), interception, and asking the supplier to cancel."""

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import fulfilment as fulfil
    from domain import order as rules
    from domain.errors import DomainError, ErrorCode
    from domain.messages import (
        CarrierNotice,
        CloseRequest,
        PurchaseInput,
        SupplierCancelInput,
        SupplierCancelResult,
        SupplierNotice,
    )
    from domain.models import (
        SYSTEM,
        Actor,
        CloseReason,
        Package,
        PackageStatus,
    )
    from workflows import calls, compat, ids
    from workflows.errors import ACTIVITY_FAILURES, rule
from workflows.order.payment import Payments


class Fulfilment(Payments):
    """Packages on their way: the supplier, the carrier, rejection and interception."""

    async def _intercept(self, package_ids: list[str], reason: str, actor: Actor) -> None:
        """Stop packages before they ship: refund each, restore its stock."""
        state = self._placed()
        assert state.payment is not None
        now = workflow.now()
        refunds = [
            await self._pay_back(fulfil.package_refund(state, pid, reason, now), state.payment)
            for pid in package_ids
        ]
        await self._commit(fulfil.cancel_packages(state, package_ids, refunds, now, actor, reason))

    async def _purchase_due(self) -> None:
        """The cancel window is over: buy each due KEPLER package, once (the package id is
        the supplier's external reference). A supplier that refuses means an intercept."""
        for package in rules.due_purchases(self._placed(), workflow.now()):
            self.purchasing.add(package.id)
            try:
                supplier_order_id: str = await calls.partner(
                    ids.PURCHASE_FROM_SUPPLIER,
                    PurchaseInput(order_id=self.inp.order_id, package=package),
                    f"buy package {package.id} from the supplier",
                    calls.SUPPLIER_PURCHASE,
                    str,
                )
            except ACTIVITY_FAILURES as err:
                workflow.logger.warning("supplier did not take %s: %s", package.id, err)
                async with self.lock:
                    self.purchasing.discard(package.id)
                    await self._intercept([package.id], "SUPPLIER_REFUSED", SYSTEM)
                continue
            async with self.lock:
                self.purchasing.discard(package.id)
                change = fulfil.mark_purchased(
                    self._placed(), package.id, supplier_order_id, workflow.now(), SYSTEM
                )
                await self._commit(change)

    async def _supplier_news(self, notice: SupplierNotice) -> None:
        state, now = self._placed(), workflow.now()
        actor = Actor(kind="supplier", id=notice.supplier_order_id)
        try:
            fulfil.check_supplier_notice(state, notice.package_id, notice.supplier_order_id)
            if notice.state == "REJECTED":
                await self._reject(notice.package_id, actor, restocked=True)
                return
            if notice.state == "AWAITING_RECEIPT":
                change = fulfil.supplier_shipped(state, notice.package_id, now, actor)
            else:
                rules.check_can_confirm(state, [notice.package_id])
                change = rules.confirm_receipt(state, [notice.package_id], now, actor, "supplier")
        except DomainError as err:
            workflow.logger.warning("supplier event ignored: %s", err.message)
            return
        if change is not None:
            await self._commit(change)

    async def _carrier_news(self, notice: CarrierNotice) -> None:
        actor = Actor(kind="carrier", id=notice.carrier)
        try:
            if notice.event == "REJECTED":
                await self._reject(notice.package_id, actor, restocked=False)
                return
            change = rules.carrier_delivered(
                self._placed(), notice.package_id, workflow.now(), actor
            )
        except DomainError as err:
            workflow.logger.warning("carrier event ignored: %s", err.message)
            return
        if change is not None:
            await self._commit(change)
            await self._replacement_delivered(notice.package_id)

    async def _replacement_delivered(self, package_id: str) -> None:
        """Overridden by Cases: a delivered replacement is its exchange's news."""

    async def _reject(self, package_id: str, actor: Actor, *, restocked: bool) -> None:
        """拒收: refund the package's goods and freight share. Supplier goods are restocked
        on the supplier's word; our own come back when the location confirms arrival."""
        state = self._placed()
        fulfil.check_can_reject(state, package_id)
        assert state.payment is not None
        now = workflow.now()
        refund = await self._pay_back(
            fulfil.package_refund(state, package_id, "REJECTED", now), state.payment
        )
        await self._commit(
            fulfil.reject(state, package_id, refund, now, actor, restocked=restocked)
        )

    async def _cancel_at_suppliers(self, req: CloseRequest, reason: CloseReason) -> None:
        """Ask each supplier holding a purchase to cancel it (the lock let go meanwhile). On a
        refusal, or when the order no longer allows a cancel once they answered, the packages
        already cancelled are intercepted alone and the buyer is told (409)."""
        cancelled: list[str] = []
        bought = [
            p
            for p in self._placed().packages
            if p.status is PackageStatus.PURCHASED and p.supplier_order_id
        ]
        try:
            for package in bought:
                answer = await self._ask_supplier_to_cancel(
                    package, req.reason or "buyer cancelled"
                )
                if not answer.cancelled:
                    raise ApplicationError(
                        f"the supplier refused to cancel package {package.id}: {answer.reason}; "
                        "the order goes on (ask for a refund once it arrives)",
                        {"package_id": package.id},
                        type=ErrorCode.SUPPLIER_REFUSED_CANCEL.value,
                        non_retryable=True,
                    )
                cancelled.append(package.id)
            rule(fulfil.check_can_cancel, self._placed())  # again: others came in meanwhile
        except ApplicationError:
            if cancelled:
                await self._intercept(cancelled, reason.value, req.actor)
            raise

    async def _ask_supplier_to_cancel(self, package: Package, reason: str) -> SupplierCancelResult:
        """Called with the lock held; orders started since it was let go while the supplier
        answers (other messages go on; a second cancel is refused with 409 meanwhile)."""
        assert package.supplier_order_id is not None
        call = calls.partner(
            ids.CANCEL_SUPPLIER_ORDER,
            SupplierCancelInput(
                package_id=package.id, supplier_order_id=package.supplier_order_id, reason=reason
            ),
            f"ask the supplier to cancel {package.id}",
            calls.SUPPLIER_CANCEL,
            SupplierCancelResult,
        )
        if not workflow.patched(compat.SUPPLIER_CANCEL_OUTSIDE_LOCK):
            answer: SupplierCancelResult = await call
            return answer
        self.cancelling.add(package.id)
        try:
            async with self._unlocked():
                answer = await call
        finally:
            self.cancelling.discard(package.id)
        return answer
