"""JSON-lines logs: one object per record, naming the order (or case) wherever it is known."""

import json
import logging
import sys

from runtime.logs import JsonLines


def line(**extra: object) -> dict[str, object]:
    record = logging.LogRecord(
        "relay", logging.WARNING, __file__, 1, "not delivered: %s", ("x",), None
    )
    for key, value in extra.items():
        setattr(record, key, value)
    parsed: dict[str, object] = json.loads(JsonLines("worker").format(record))
    return parsed


def test_a_record_is_one_json_object_with_its_subject() -> None:
    plain = line()
    assert (plain["level"], plain["process"], plain["logger"], plain["msg"]) == (
        "WARNING",
        "worker",
        "relay",
        "not delivered: x",
    )
    assert "order_id" not in plain and str(plain["ts"]).endswith("+00:00")
    assert line(order_id="o-1")["order_id"] == "o-1"
    in_workflow = line(temporal_workflow={"workflow_id": "order-o-2", "run_id": "r"})
    assert in_workflow["order_id"] == "o-2"
    in_activity = line(temporal_activity={"workflow_id": "order-o-3", "activity_id": "1"})
    assert in_activity["order_id"] == "o-3"
    assert line(temporal_workflow={"workflow_id": "after-sales-c-1"})["case_id"] == "c-1"
    assert "order_id" not in line(temporal_workflow={"workflow_id": "orders-reconcile"})


def test_an_exception_travels_inside_the_line() -> None:
    record = logging.LogRecord("api", logging.ERROR, __file__, 1, "failed", (), None)
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    text = JsonLines("api").format(record)
    assert "\n" not in text  # one line, however long the traceback
    assert "ValueError: boom" in json.loads(text)["exc"]
