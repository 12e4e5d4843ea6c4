"""Error codes a caller can see. `api/errors.py` maps each to an HTTP status.

Workflows and activities raise `ApplicationError(message, type=<code>)` with these names;
domain functions raise `DomainError`, which carries the same codes.
"""

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    INVALID_TRANSITION = "INVALID_TRANSITION"
    OUT_OF_STOCK = "OUT_OF_STOCK"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    NOT_FOUND = "NOT_FOUND"
    UNKNOWN_SKU = "UNKNOWN_SKU"
    SKU_DELISTED = "SKU_DELISTED"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    PAYMENT_GATEWAY_ERROR = "PAYMENT_GATEWAY_ERROR"
    FORBIDDEN = "FORBIDDEN"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    VALIDATION = "VALIDATION"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    SUPPLIER_REFUSED_CANCEL = "SUPPLIER_REFUSED_CANCEL"
    SUPPLIER_ERROR = "SUPPLIER_ERROR"
    NOTHING_AVAILABLE = "NOTHING_AVAILABLE"  # a reorder of which nothing can be bought
    TXN_REUSED = "TXN_REUSED"  # a gateway transaction that already settled another order
    VERSION_CONFLICT = "VERSION_CONFLICT"  # an action made against an old version
    UNSUPPORTED_MEDIA = "UNSUPPORTED_MEDIA"  # an upload that is not what it must be
    TOO_MANY_UNPAID_ORDERS = "TOO_MANY_UNPAID_ORDERS"  # pay or close one first (429)
    IMAGE_QUOTA_EXCEEDED = "IMAGE_QUOTA_EXCEEDED"  # a buyer's evidence images fill the quota
    ORDER_ERROR = "ORDER_ERROR"  # a step the order could not take, for good: operators look
    EVENT_ID_REUSED = "EVENT_ID_REUSED"  # a partner's event id again, with another payload
    SHOP_EXISTS = "SHOP_EXISTS"  # a shop id already taken, with other details (409)
    MULTIPLE_SHOPS = "MULTIPLE_SHOPS"  # one order's cart spans shops: a checkout is for that
    REFUND_FAILED = "REFUND_FAILED"  # the channel refused a refund (again): its reason says why
    # failures, not refusals: the request was not judged by any rule
    INTERNAL = "INTERNAL"  # unexpected: logged
    TEMPORAL_UNAVAILABLE = "TEMPORAL_UNAVAILABLE"  # past the deadline on Temporal: retry (503)
    MALFORMED_BODY = "MALFORMED_BODY"  # not JSON, or nested too deep (400)
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"  # (405, with Allow)
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"  # (413)
    HTTP_ERROR = "HTTP_ERROR"  # any other HTTP-level refusal


# what no business rule decided: never a refusal to hand back as the caller's answer
FAILURES = frozenset(
    {
        ErrorCode.ORDER_ERROR,
        ErrorCode.INTERNAL,
        ErrorCode.TEMPORAL_UNAVAILABLE,
        ErrorCode.MALFORMED_BODY,
        ErrorCode.METHOD_NOT_ALLOWED,
        ErrorCode.PAYLOAD_TOO_LARGE,
        ErrorCode.HTTP_ERROR,
    }
)


class DomainError(Exception):
    """A refusal by a business rule; `details` is machine-readable context."""

    def __init__(self, code: ErrorCode, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


def invalid_transition(message: str) -> DomainError:
    return DomainError(ErrorCode.INVALID_TRANSITION, message)
