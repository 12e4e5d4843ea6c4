"""The order saga: one workflow per order, id `order-<order id>` (`workflow.py`: the
messages it accepts); each concern's steps live in their own module, layered one on
another: run, refunding, payment, fulfilment, closing, refund_requests, cases."""

from workflows.order.workflow import OrderWorkflow

__all__ = ["OrderWorkflow"]
