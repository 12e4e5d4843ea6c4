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
    from domain.after_sales import AfterSalesCase, CaseAction, CaseCommand
    from domain.messages import (
        CaseSettlement,
        ReshipCaseRequest,
        ReshipOutcome,
        SettleCaseRequest,
    )
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
        self.reshipped: ReshipOutcome | None = None  # ... on an exchange's replacement

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
                keep_open=settlement.keep_open,
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

    @workflow.signal(name=ids.CASE_RESHIPPED_SIGNAL)
    def order_reshipped(self, outcome: ReshipOutcome) -> None:
        self.reshipped = outcome

    @workflow.signal(name=ids.REPLACEMENT_DELIVERED_SIGNAL)
    async def replacement_delivered(self, package_id: str) -> None:
        """The carrier delivered the replacement: the exchange is received."""
        async with self.lock:
            nxt = rules.replacement_delivered(
                self.case, workflow.now(), Actor(kind="carrier", id=package_id)
            )
            if nxt is not None:
                try:
                    await self._save(nxt)
                except ApplicationError as err:  # the buyer or the deadline still ends it
                    workflow.logger.error("case %s: %s", self.case.id, err.message)

    @workflow.update
    async def act(self, cmd: CaseCommand) -> AfterSalesCase:
        """A party's action; answers once any settlement it caused is done."""
        async with self.lock:
            if cmd.action is CaseAction.RESHIP:
                packages = await self._reship(cmd)
                nxt = rule(rules.reshipped, self.case, cmd, packages, workflow.now())
            else:
                nxt = rule(rules.act, self.case, cmd, workflow.now())
            await self._save(nxt)
        await workflow.wait_condition(lambda: self.case.settlement is None)
        return self.case

    async def _reship(self, cmd: CaseCommand) -> list[str]:
        """Ask the order to ship the replacement (it owns the stock and the packages) and wait
        for its answer; its refusal (OUT_OF_STOCK) is this action's, and nothing changes."""
        rule(rules.check_command, self.case, cmd)
        assert cmd.carrier is not None and cmd.tracking_no is not None
        self.reshipped = None
        order = workflow.get_external_workflow_handle(ids.order_workflow_id(self.case.order_id))
        await order.signal(
            "reship_case",
            ReshipCaseRequest(
                order_id=self.case.order_id,
                case_id=self.case.id,
                carrier=cmd.carrier,
                tracking_no=cmd.tracking_no,
                actor=cmd.actor,
            ),
        )
        await workflow.wait_condition(lambda: self.reshipped is not None)
        outcome = self.reshipped
        assert outcome is not None
        if outcome.error:
            raise ApplicationError(outcome.error, type=outcome.code, non_retryable=True)
        return outcome.package_ids

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
