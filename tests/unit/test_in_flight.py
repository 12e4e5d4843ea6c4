"""The API's count of placements under way: each sees only those that arrived before it."""

import pytest

from api.messaging import InFlight
from domain.messages import OrderWorkflowInput


def cart(*lines: tuple[str, int]) -> OrderWorkflowInput:
    return OrderWorkflowInput.model_validate(
        {
            "order_id": "o",
            "buyer_id": "b",
            "lines": [{"sku": s, "quantity": q} for s, q in lines],
            "address": {"name": "n", "phone": "138", "line1": "l", "city": "c", "country": "CN"},
        }
    )


def test_placements_count_only_those_that_arrived_earlier() -> None:
    in_flight = InFlight()
    with in_flight.asking(cart(("TEA", 2), ("TEA", 1), ("MUG", 1))) as first:
        with in_flight.asking(cart(("TEA", 5))) as second:
            with in_flight.asking(cart(("MUG", 4))) as third:
                assert in_flight.ahead(first) == {}
                assert in_flight.ahead(second) == {"TEA": 3, "MUG": 1}
                assert in_flight.ahead(third) == {"TEA": 8, "MUG": 1}
            assert in_flight.ahead(second) == {"TEA": 3, "MUG": 1}
        with in_flight.asking(cart(("TEA", 1))) as fourth:
            assert in_flight.ahead(fourth) == {"TEA": 3, "MUG": 1}  # the others are done
    assert in_flight.asks == {}
    with pytest.raises(RuntimeError), in_flight.asking(cart(("TEA", 1))):
        raise RuntimeError("placement failed")
    assert in_flight.asks == {}  # a failed placement frees its units too
