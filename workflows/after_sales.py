"""One workflow per after-sales case, id `after-sales-<case id>`, started by its order.

The case decides with `domain.after_sales`; every change is saved (a local activity) and
published. When the case ends it asks its order's workflow to settle it (refund and restock,
or free the units): the order stays the owner of its lines, money and stock.
"""

import asyncio
from collections.abc import Callable

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import after_sales as rules
    from domain.after_sales import AfterSalesCase, CaseCommand
    from domain.messages import CaseSettlement, SettleCaseRequest
    from domain.models import Actor
    from workflows import calls, case_details, ids
    from workflows.errors import ACTIVITY_FAILURES, rule, unwrap


@workflow.defn(name="AfterSalesWorkflow")
class AfterSalesWorkflow:
    @workflow.init
    def __init__(self, case: AfterSalesCase) -> None:
        self.case = case
        self.lock = asyncio.Lock()
        self.answer: CaseSettlement | None = None  # the order's word on a settlement

    @workflow.run
    async def run(self, case: AfterSalesCase) -> AfterSalesCase:
        case_details.publish(self.case)
        while not rules.is_final(self.case):
            if self.case.settlement is not None:
                await self._settle()
                continue
            version, deadline = self.case.version, self.case.deadline
            if deadline is None:
                await workflow.wait_condition(self._moved_on(version))
                continue
            left = (deadline - workflow.now()).total_seconds()
            if left > 0:
                try:
                    await workflow.wait_condition(
                        self._moved_on(version),
                        timeout=left,
                        timeout_summary=f"{self.case.status}: {self.case.deadline_action}",
                    )
                    continue
                except TimeoutError:
                    pass
            async with self.lock:
                if self.case.version == version:
                    nxt = rules.on_deadline(self.case, workflow.now())
                    if nxt is not None:
                        try:
                            await self._save(nxt)
                        except ApplicationError as err:  # never fatal: wait for news
                            workflow.logger.error("case %s: %s", self.case.id, err.message)
            if self.case.version == version:  # nothing changed: never spin on a passed deadline
                await workflow.wait_condition(self._moved_on(version))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.case

    def _moved_on(self, version: int) -> Callable[[], bool]:
        return lambda: self.case.version != version

    async def _settle(self) -> None:
        """Ask the order to move the money and stock (a signal; the order answers with one,
        and settles a case once however often it is asked), then record the outcome."""
        settlement = self.case.settlement
        assert settlement is not None
        self.answer = None
        order = workflow.get_external_workflow_handle(ids.order_workflow_id(self.case.order_id))
        await order.signal(
            "settle_case",
            SettleCaseRequest(
                order_id=self.case.order_id,
                case_id=self.case.id,
                refund=settlement.refund,
                amount_cents=settlement.amount_cents,
                restock=settlement.restock,
                actor=Actor(kind="system", id=f"case {self.case.id}"),
            ),
        )
        await workflow.wait_condition(lambda: self.answer is not None)
        assert self.answer is not None
        if self.answer.error:
            workflow.logger.error("case %s: %s", self.case.id, self.answer.error)
        async with self.lock:
            try:
                await self._save(rules.settled(self.case, self.answer.refund, workflow.now()))
            except ApplicationError as err:  # never fatal: the order is asked again later
                workflow.logger.error("case %s not saved: %s", self.case.id, err.message)
                await asyncio.sleep(3600)  # then ask the order again (it answers once)

    @workflow.signal(name=ids.CASE_SETTLED_SIGNAL)
    def order_settled(self, answer: CaseSettlement) -> None:
        self.answer = answer

    @workflow.update
    async def act(self, cmd: CaseCommand) -> AfterSalesCase:
        """A party's action; answers once any settlement it caused is done."""
        async with self.lock:
            await self._save(rule(rules.act, self.case, cmd, workflow.now()))
        await workflow.wait_condition(lambda: self.case.settlement is None)
        return self.case

    @act.validator
    def _validate_act(self, cmd: CaseCommand) -> None:
        rule(rules.check_command, self.case, cmd)

    @workflow.query
    def current(self) -> AfterSalesCase:
        return self.case

    async def _save(self, case: AfterSalesCase) -> None:
        try:
            await calls.db(ids.SAVE_CASE, case, case.timeline[-1].action)
        except ACTIVITY_FAILURES as err:
            raise unwrap(err) from None
        self.case = case
        case_details.publish(case)
