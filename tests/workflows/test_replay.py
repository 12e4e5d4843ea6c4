"""Recorded histories of the main scenarios replay against today's workflow code, so a
non-deterministic change fails CI. Re-record with `RECORD_HISTORIES=1 pytest tests/workflows`
only when a change is meant to be incompatible (and then version it with workflow.patched)."""

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.workflows.conftest import HISTORIES
from worker import WORKFLOWS

RECORDED = sorted(HISTORIES.glob("*.json"))


def test_the_main_scenarios_are_recorded() -> None:
    names = {p.stem for p in RECORDED}
    assert {
        "payment_timeout",
        "paid_with_balance",
        "paid_by_gateway_with_duplicates",
        "auto_confirmed",
        "receipt_extended",
        "sold_out_at_payment",
        "orphan_payment_refunded",
        "orphan_payment_refund_failed",
        "orphan_payment_refund_retried",
        "kepler_purchased",
        "kepler_cancelled_in_window",
        "kepler_cancelled_at_supplier",
        "kepler_delivered",
        "kepler_rejected",
        "dropship_rejected_one_package",
        "all_rejected_and_returned",
        "mixed_order_completed",
        "refund_request_agreed",
        "refund_request_auto_agreed",
        "refund_failed_and_retried",
        "case_return_and_refund",
        "case_return_and_refund_order",
        "case_no_answer_agreed",
        "case_no_return_closed",
        "case_no_confirmation_refunded",
        "case_not_escalated_closed",
        "reviewed",
        "reordered",
        "operator_cancelled_unpaid",
        "operator_cancelled_paid",
        "reconciled_paid",
    } <= names


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
async def test_history_replays_without_nondeterminism(path: object) -> None:
    assert hasattr(path, "read_text")
    history = WorkflowHistory.from_json(path.stem, path.read_text())  # type: ignore[attr-defined]
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
