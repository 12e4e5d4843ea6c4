"""Logs as JSON lines: one object per record, with `order_id` wherever one is known.

The order comes from, in turn: an `order_id` passed in `extra`, or the workflow id of the
Temporal workflow or activity the record was logged in (`order-<id>`; a case's
`after-sales-<id>` gives `case_id`).
"""

import json
import logging
from datetime import UTC, datetime
from typing import Any

from workflows import ids


class JsonLines(logging.Formatter):
    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "process": self.process,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_subject(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _subject(record: logging.LogRecord) -> dict[str, str]:
    """The order (or case) a record is about, if it can tell."""
    explicit = getattr(record, "order_id", None)
    if explicit:
        return {"order_id": str(explicit)}
    for key in ("temporal_workflow", "temporal_activity"):
        context = getattr(record, key, None)
        workflow_id = context.get("workflow_id", "") if isinstance(context, dict) else ""
        if workflow_id.startswith(ids.ORDER_WORKFLOW_PREFIX):
            return {"order_id": workflow_id[len(ids.ORDER_WORKFLOW_PREFIX) :]}
        if workflow_id.startswith(ids.CASE_WORKFLOW_PREFIX):
            return {"case_id": workflow_id[len(ids.CASE_WORKFLOW_PREFIX) :]}
    return {}


def setup(process: str, level: int = logging.INFO) -> None:
    """Every record of this process, JSON lines on stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines(process))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # uvicorn's own, the same way
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
