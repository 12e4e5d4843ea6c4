"""Bulk shipping: a CSV of (order, package, carrier, tracking number), each row a single ship."""

import csv
import io

from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError

from api import actions
from api.actions import ShipResult, ShipRow
from api.deps import DatabaseDep, Merchant, TemporalDep
from api.errors import Problem, first_error
from api.orders import ShipBody
from domain.errors import ErrorCode
from domain.models import printable

router = APIRouter(tags=["orders"])
COLUMNS = ("order_id", "package_id", "carrier", "tracking_no")
MAX_ROWS = 1000
MAX_ID = 80
MAX_BYTES = 256 * 1024


class ShipBatchOut(BaseModel):
    results: list[ShipResult]


def _id(name: str, raw: str) -> str:
    value = raw.strip()
    if not value or len(value) > MAX_ID:
        raise Problem(ErrorCode.VALIDATION, f"{name}: 1 to {MAX_ID} characters")
    try:
        return printable(value)
    except ValueError as err:
        raise Problem(ErrorCode.VALIDATION, f"{name}: {err}") from None


def _row(number: int, fields: list[str]) -> ShipRow:
    """One data row (`number` counts from 1 after the header); a bad one is refused alone."""
    order_id = fields[0].strip()[:MAX_ID] if fields else ""
    package_id = fields[1].strip()[:MAX_ID] if len(fields) > 1 else ""
    try:
        if len(fields) != len(COLUMNS):
            raise Problem(
                ErrorCode.VALIDATION, f"row {number}: {len(COLUMNS)} fields, not {len(fields)}"
            )
        order_id, package_id = _id("order_id", fields[0]), _id("package_id", fields[1])
        try:
            carrier, tracking_no = fields[2].strip() or None, fields[3].strip() or None
            body = ShipBody(carrier=carrier, tracking_no=tracking_no)
        except ValidationError as err:
            raise Problem(ErrorCode.VALIDATION, first_error(list(err.errors()))) from None
        return ShipRow(order_id, package_id, body.carrier, body.tracking_no)
    except Problem as problem:
        return ShipRow(order_id, package_id, refusal=problem)


def parse(raw: bytes) -> list[ShipRow]:
    """The upload's rows; the file as a whole is refused (422) when it is not such a CSV."""
    if len(raw) > MAX_BYTES:
        raise Problem(ErrorCode.VALIDATION, f"the file: at most {MAX_BYTES // 1024} KB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Problem(ErrorCode.VALIDATION, "the file: UTF-8 text") from None
    try:
        lines = [r for r in csv.reader(io.StringIO(text)) if any(f.strip() for f in r)]
    except csv.Error as err:  # a NUL, an unclosed quote at the end, a field past 128 KB
        raise Problem(ErrorCode.VALIDATION, f"the file: not CSV ({err})") from None
    if not lines or tuple(f.strip().lower() for f in lines[0]) != COLUMNS:
        raise Problem(ErrorCode.VALIDATION, f"the file: a header row {','.join(COLUMNS)}")
    rows = lines[1:]
    if not 1 <= len(rows) <= MAX_ROWS:
        raise Problem(ErrorCode.VALIDATION, f"the file: 1 to {MAX_ROWS} rows after the header")
    return [_row(n, fields) for n, fields in enumerate(rows, start=1)]


@router.post(
    "/packages/ship-batch",
    response_model=ShipBatchOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "header order_id,package_id,carrier,tracking_no; up to 1,000 rows",
        }
    },
)
async def ship_batch(
    request: Request, user: Merchant, db: DatabaseDep, client: TemporalDep
) -> ShipBatchOut:
    """Ship many packages from one CSV: each row as a single ship, answered per row (SHIPPED
    or REFUSED with the reason a single ship would give), in the file's order. A bad row is
    refused alone; a row already shipped with the same carrier and tracking number is
    SHIPPED again, so sending a file twice ships nothing twice."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("text/csv", "text/plain"):
        raise Problem(ErrorCode.UNSUPPORTED_MEDIA, "send the rows as text/csv", status=415)
    rows = parse(await request.body())
    results = await actions.ship_batch(client=client, db=db, user=user, rows=rows)
    return ShipBatchOut(results=results)
