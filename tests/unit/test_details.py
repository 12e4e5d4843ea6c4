"""What the Temporal Web UI shows of an order: refunds under way and failed ones, with the
channel's reason."""

from domain.models import OrderTimings
from tests.unit.test_domain_order import _completed, _with_refund
from workflows.details import render


def test_the_details_show_refunds_under_way_and_why_a_refund_failed() -> None:
    done = _completed(OrderTimings())
    text = render(_with_refund(_with_refund(done, "PENDING"), "FAILED"))
    assert "**Refunds under way**" in text and "R-PENDING" in text
    assert "**Failed refunds**" in text and "R-FAILED" in text and ": refused" in text
    assert "Refunds under way" not in render(done) and "Failed refunds" not in render(done)
