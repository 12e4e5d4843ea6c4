"""Names defined once: workflow ids, activity names, search-attribute keys."""

from temporalio.common import SearchAttributeKey

ORDER_WORKFLOW_PREFIX = "order-"
CASE_WORKFLOW_PREFIX = "after-sales-"
PLACE_UPDATE_ID = "place"  # update id of placement: the same request twice is one placement

ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
BUYER_ID = SearchAttributeKey.for_keyword("BuyerId")
ORDER_TOTAL = SearchAttributeKey.for_int("OrderTotal")
CLOSE_REASON = SearchAttributeKey.for_keyword("CloseReason")
REFUND_FAILED = SearchAttributeKey.for_bool("RefundFailed")  # a refund an admin must retry
CASE_STATUS = SearchAttributeKey.for_keyword("CaseStatus")  # after-sales case workflows
ORDER_ID = SearchAttributeKey.for_keyword("OrderId")
PAID_AT = SearchAttributeKey.for_datetime("PaidAt")  # "paid > 2 days ago, not shipped"
OPEN_CASES = SearchAttributeKey.for_int("OpenCases")  # an order's open after-sales cases
ORDER_ERROR = SearchAttributeKey.for_bool("OrderError")  # a step failed for good: look
SHOP_ID = SearchAttributeKey.for_keyword("ShopId")  # orders and cases: set at start, fixed
SEARCH_ATTRIBUTES = (
    ORDER_STATUS,
    BUYER_ID,
    ORDER_TOTAL,
    CLOSE_REASON,
    REFUND_FAILED,
    CASE_STATUS,
    ORDER_ID,
    PAID_AT,
    OPEN_CASES,
    ORDER_ERROR,
    SHOP_ID,
)

# the business counter of saved order events (the worker's metrics; an adopted placement is
# counted by its workflow, the rest where their change is saved)
EVENTS_METRIC = ("orders_events", "order events saved, by type")

# activity names, shared by workflows (which must not import activities/) and the worker
PLACE_ORDER = "place_order"
ACCEPT_PAYMENT = "accept_payment"
SAVE_ORDER = "save_order"
CLOSE_UNLESS_INTENTS = "close_unless_intents"
NOTE_ORDER_ERROR = "note_order_error"
LOAD_ORDER = "load_order"
RECONCILE_ORDERS = "reconcile_orders"
RECONCILE_SCHEDULE_ID = "orders-reconcile"
RECONCILE_WORKFLOW_ID = "orders-reconcile"
RECONCILE_PLACEMENTS = "reconcile_placements"  # the last minutes' placements, every 30 s
PLACEMENTS_SCHEDULE_ID = "orders-reconcile-placements"
PLACEMENTS_WORKFLOW_ID = "orders-reconcile-placements"
REFUND_PAYMENT = "refund_payment"
REFUND_LATE_PAYMENT = "refund_late_payment"  # a late payment's refund, FAILED recorded
RECORD_LATE_REFUND = "record_late_refund"  # a late refund's outcome when its budget ran out
SETTLE_OPEN_INTENTS = "settle_open_intents"  # close an order's intents; paid ones come back
SWEEP_CAPTURES = "sweep_captures"  # the gateway's captures against the payments ledger
PURCHASE_FROM_SUPPLIER = "purchase_from_supplier"
CANCEL_SUPPLIER_ORDER = "cancel_supplier_order"
SAVE_CASE = "save_case"
START_CASE = "start_case"
RETRY_SIGNAL = "retry"  # an operator's word (Web UI: Send Signal) to try a failed step again
CASE_SETTLED_SIGNAL = "order_settled"  # the order's answer to a case's settle_case signal
CASE_RESHIPPED_SIGNAL = "order_reshipped"  # the order's answer to an exchange's reship_case
REPLACEMENT_DELIVERED_SIGNAL = "replacement_delivered"  # the carrier delivered a replacement


def order_workflow_id(order_id: str) -> str:
    return f"{ORDER_WORKFLOW_PREFIX}{order_id}"


def case_workflow_id(case_id: str) -> str:
    return f"{CASE_WORKFLOW_PREFIX}{case_id}"


def orphan_payment_workflow_id(txn_id: str) -> str:
    return f"orphan-payment-{txn_id}"


def orphan_refund_retry_id(txn_id: str) -> str:
    """An admin's retry of a late payment's FAILED refund: one at a time per payment."""
    return f"orphan-payment-{txn_id}-retry"


def late_refund_id(txn_id: str) -> str:
    """The refund of a payment that came after its order's workflow ended."""
    return f"{txn_id}-R"


KINDS = {"KEYWORD": "Keyword", "INT": "Int", "BOOL": "Bool", "DATETIME": "Datetime"}  # CLI names


def search_attribute_flags() -> list[str]:
    """`temporal server start-dev` flags that register our search attributes."""
    out: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        kind = KINDS[key.indexed_value_type.name]
        out += ["--search-attribute", f"{key.name}={kind}"]
    return out
