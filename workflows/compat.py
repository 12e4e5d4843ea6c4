"""Workflow patches: one id per behaviour change that would alter a running order's history.

Each id is used with `workflow.patched(...)`. For each: what changed, and which recorded
histories in tests/histories/ replay the old path and the new (tests/workflows/test_replay.py
checks that every id used is listed here, that each history named exists, and that the new
path's histories carry the id's marker and the old path's do not).

finish-waits-while-held-open
    changed: a refund FAILED for good holds a finished order open (`is_finished` hold), and a
        held-open order times no FINISH deadline (`next_deadline` hold_finish). Two changes
        under one id, from before ids were one per change; the old branch finishes an order
        whose old FINISH deadline passed under the old rule (it used to spin).
    old path: histories without the marker that reach FINISH (auto_confirmed, reviewed); the
        old rule's FAILED-refund case is covered by the pure-rule tests in
        tests/unit/test_domain_order.py (its recorded history was overwritten long ago).
    new path: refund_failed_and_retried.

refunds-outside-the-lock
    changed: a refund is recorded PENDING under the order's lock and its money is moved by
        the channel after the lock is released; the outcome (SUCCEEDED, or FAILED with the
        channel's reason) is applied under the lock when it comes. An admin's retry is PENDING
        again until the channel answers.
    old path: every history recorded before it that refunds (operator_cancelled_paid,
        refund_failed_and_retried, kepler_rejected, case_return_and_refund_order, ...).
    new path: refund_pending_then_settled, refund_failed_pending_retried.

supplier-cancel-outside-the-lock
    changed: asking a supplier to cancel a purchase lets the order's lock go while the
        supplier answers (a second cancel meanwhile is a 409); the order is looked at afresh
        after.
    old path: kepler_cancelled_at_supplier.
    new path: kepler_cancelled_at_supplier_unlocked.

intents-closed-before-an-unpaid-close
    changed: before an unpaid order closes (its payment deadline, a buyer's cancel, a
        merchant's close, an operator's stop), it closes its payment intents at the gateway
        (trade close) and takes a payment made on one whose callback never came; a cancel or
        close then finds the order paid (409).
    old path: payment_timeout, operator_cancelled_unpaid.
    new path: paid_found_at_the_deadline, payment_timeout_intents_closed.

late-refund-recorded
    changed: a late payment's refund is bounded and its outcome recorded: refused for good or
        not made within its day, it is a FAILED refund in the ledger and on the order (with
        the gateway's reason), retried by an admin; the workflow never ends Failed.
    old path: orphan_payment_refunded.
    new path: orphan_payment_refund_failed, orphan_payment_refund_retried.

reconcile-sweeps-captures
    changed: each reconciliation round also compares the gateway's captures with the payments
        ledger and delivers a capture the ledger lacks as the payment it is.
    old path: none recorded (a round's history lives minutes; a round started before it
        replays its one activity unchanged).
    new path: reconcile_round_outlasted_an_outage.

close-unless-intents
    changed: at the payment deadline, an order that never opened a payment intent is closed
        by one local activity that checks for intents in the same transaction as the close
        (`close_unless_intents`), instead of a gateway activity (that found none) and then
        the save. An order with intents is closed as before: intents closed at the gateway,
        a payment found on one taken, then the close.
    old path: placed_first_payment_timeout, paid_found_at_the_deadline.
    new path: payment_deadline_closed_at_once, payment_deadline_intents_closed_first.

Paths chosen by the workflow's input, not by a patch (a running order keeps the input it
started with, so its history cannot change):

placed-before-start
    changed: the API places the order in the database (price, limits, stock, the first
        snapshot) and starts the workflow with that placement (`OrderWorkflowInput.placement`)
        and the order's search attributes; the workflow adopts it, with no placement update
        and no local activity. Without it (every order started before), placement is the
        first update, `place`, which still answers as it did.
    old path: every history recorded before it (paid_with_balance_by_receipts, ...).
    new path: placed_first_paid_with_balance, placed_first_paid_with_credit,
        placed_first_payment_timeout, placed_first_auto_confirmed, placed_first_reordered.
"""

FINISH_WAITS = "finish-waits-while-held-open"
REFUNDS_OUTSIDE_LOCK = "refunds-outside-the-lock"
SUPPLIER_CANCEL_OUTSIDE_LOCK = "supplier-cancel-outside-the-lock"
INTENTS_CLOSED_FIRST = "intents-closed-before-an-unpaid-close"
LATE_REFUND_RECORDED = "late-refund-recorded"  # the orphan-payment workflow
SWEEP_CAPTURES = "reconcile-sweeps-captures"  # the reconciliation workflow
CLOSE_UNLESS_INTENTS = "close-unless-intents"

# id -> (old-path histories, new-path histories): the list above, as data for the replay test
COVERAGE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    CLOSE_UNLESS_INTENTS: (
        ("placed_first_payment_timeout", "paid_found_at_the_deadline"),
        ("payment_deadline_closed_at_once", "payment_deadline_intents_closed_first"),
    ),
    FINISH_WAITS: (("auto_confirmed", "reviewed"), ("refund_failed_and_retried",)),
    REFUNDS_OUTSIDE_LOCK: (
        ("operator_cancelled_paid", "refund_failed_and_retried", "kepler_rejected"),
        ("refund_pending_then_settled", "refund_failed_pending_retried"),
    ),
    SUPPLIER_CANCEL_OUTSIDE_LOCK: (
        ("kepler_cancelled_at_supplier",),
        ("kepler_cancelled_at_supplier_unlocked",),
    ),
    INTENTS_CLOSED_FIRST: (
        ("payment_timeout", "operator_cancelled_unpaid"),
        ("paid_found_at_the_deadline", "payment_timeout_intents_closed"),
    ),
    LATE_REFUND_RECORDED: (
        ("orphan_payment_refunded",),
        ("orphan_payment_refund_failed", "orphan_payment_refund_retried"),
    ),
    SWEEP_CAPTURES: ((), ("reconcile_round_outlasted_an_outage",)),
}
