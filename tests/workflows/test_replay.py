"""Recorded histories of the main scenarios replay against today's workflow code, so a
non-deterministic change fails CI. A changed path is versioned with workflow.patched (one id per
change, in workflows/compat.py) and recorded under a new name with
`RECORD_HISTORIES=1 pytest tests/workflows -k <its test>`; recorded histories are never
overwritten."""

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.workflows.conftest import HISTORIES, record
from worker import WORKFLOWS
from workflows import compat

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
        "case_exchanged",
        "case_exchanged_order",
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


def test_a_recorded_history_is_never_overwritten(monkeypatch: pytest.MonkeyPatch) -> None:
    path = RECORDED[0]
    before = path.read_bytes()
    monkeypatch.setenv("RECORD_HISTORIES", "1")
    with pytest.raises(FileExistsError, match="never overwritten"):
        import asyncio

        asyncio.run(record(None, path.stem))  # type: ignore[arg-type]  # refused before use
    assert path.read_bytes() == before


def _patch_ids_used() -> set[str]:
    root = Path(compat.__file__).resolve().parent
    used: set[str] = set()
    for module in (m for m in root.rglob("*.py") if m.name != "compat.py"):
        source = re.sub(r"\(\s+", "(", module.read_text())
        assert source.count("workflow.patched(") == source.count("workflow.patched(compat."), (
            f"{module.name}: a patch id not from workflows/compat.py"
        )
        used |= set(re.findall(r"workflow\.patched\(compat\.([A-Z_]+)", source))
    return {getattr(compat, name) for name in used}


def test_every_patch_id_is_in_the_compat_table_with_histories_of_both_paths() -> None:
    names = {p.stem for p in RECORDED}
    assert _patch_ids_used() == set(compat.COVERAGE)
    for patch_id, (old, new) in compat.COVERAGE.items():
        assert f"\n{patch_id}\n    changed: " in (compat.__doc__ or ""), patch_id
        assert new, patch_id  # an old path not recorded says so in the table
        assert set(old) | set(new) <= names, patch_id
        for name in new:  # the new path is the one that wrote the marker
            assert patch_id in _markers(HISTORIES / f"{name}.json"), (patch_id, name)
        for name in old:
            assert patch_id not in _markers(HISTORIES / f"{name}.json"), (patch_id, name)


def _markers(path: Path) -> set[str]:
    """The patch ids a recorded history carries."""
    found: set[str] = set()
    for event in json.loads(path.read_text())["events"]:
        marker = event.get("markerRecordedEventAttributes") or {}
        if marker.get("markerName") != "core_patch":
            continue
        for payloads in marker.get("details", {}).values():
            for payload in payloads.get("payloads", []):
                found.add(json.loads(base64.b64decode(payload["data"]))["id"])
    return found


def test_an_order_placed_first_has_no_placement_update_and_no_placement_activity() -> None:
    """The API placed it before the workflow started: the workflow adopted it from its input."""
    placed_first = [p for p in RECORDED if p.stem.startswith("placed_first_")]
    assert len(placed_first) >= 5
    for path in [*placed_first, HISTORIES / "paid_with_balance_by_receipts.json"]:
        events = json.loads(path.read_text())["events"]
        started = events[0]["workflowExecutionStartedEventAttributes"]
        payload = base64.b64decode(started["input"]["payloads"][0]["data"])
        adopted = json.loads(payload).get("placement") is not None
        updates = [
            e["workflowExecutionUpdateAcceptedEventAttributes"]["acceptedRequest"]["input"]["name"]
            for e in events
            if "workflowExecutionUpdateAcceptedEventAttributes" in e
        ]
        assert adopted is path.stem.startswith("placed_first_"), path.stem
        # (a test's later `place` updates only wait for the order's lock: see Shop.settle)
        assert (updates[:1] == ["place"]) is not adopted, (path.stem, updates)
        assert ("place_order" in _local_activities(events)) is not adopted, path.stem


def _local_activities(events: list[dict[str, Any]]) -> list[str]:
    """The local activities a history ran, by type."""
    return [
        json.loads(base64.b64decode(m["details"]["data"]["payloads"][0]["data"]))["activity_type"]
        for m in (e.get("markerRecordedEventAttributes") for e in events)
        if m and m.get("markerName") == "core_local_activity"
    ]
