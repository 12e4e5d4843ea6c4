"""Names defined once: workflow ids, activity names, search-attribute keys."""

from temporalio.common import SearchAttributeKey

ORDER_WORKFLOW_PREFIX = "order-"
PLACE_UPDATE_ID = "place"  # update id of placement: the same request twice is one placement

ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
BUYER_ID = SearchAttributeKey.for_keyword("BuyerId")
ORDER_TOTAL = SearchAttributeKey.for_int("OrderTotal")
CLOSE_REASON = SearchAttributeKey.for_keyword("CloseReason")
SEARCH_ATTRIBUTES = (ORDER_STATUS, BUYER_ID, ORDER_TOTAL, CLOSE_REASON)

# activity names, shared by workflows (which must not import activities/) and the worker
PLACE_ORDER = "place_order"
ACCEPT_PAYMENT = "accept_payment"
SAVE_ORDER = "save_order"
REFUND_PAYMENT = "refund_payment"
PURCHASE_FROM_SUPPLIER = "purchase_from_supplier"
CANCEL_SUPPLIER_ORDER = "cancel_supplier_order"


def order_workflow_id(order_id: str) -> str:
    return f"{ORDER_WORKFLOW_PREFIX}{order_id}"


def orphan_payment_workflow_id(txn_id: str) -> str:
    return f"orphan-payment-{txn_id}"


def search_attribute_flags() -> list[str]:
    """`temporal server start-dev` flags that register our search attributes."""
    kinds = {"KEYWORD": "Keyword", "INT": "Int"}
    out: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        kind = kinds[key.indexed_value_type.name]
        out += ["--search-attribute", f"{key.name}={kind}"]
    return out
