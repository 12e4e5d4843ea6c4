"""What an operator types into the console's case forms: yuan and the hidden version."""

import pytest

from api.console.cases import _cents, _version
from api.errors import Problem
from domain.models import MAX_AMOUNT_CENTS


@pytest.mark.parametrize(
    ("typed", "cents"), [("12.50", 1250), ("12.5", 1250), ("¥7", 700), (" 0.01 ", 1)]
)
def test_an_amount_in_yuan_becomes_cents(typed: str, cents: int) -> None:
    assert _cents(typed) == cents


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("12.345", "amount: yuan with at most two decimals"),
        ("twelve", "amount: yuan, e.g. 12.50"),
        ("NaN", "amount: yuan with at most two decimals"),
        ("0", "amount: from ¥0.01 to"),
        ("-3", "amount: from ¥0.01 to"),
        (str(MAX_AMOUNT_CENTS), "amount: from ¥0.01 to"),  # yuan, so 100× the cap
        ("1e400", "amount: from ¥0.01 to"),
    ],
)
def test_a_bad_amount_is_refused_with_its_reason(typed: str, reason: str) -> None:
    with pytest.raises(Problem) as refused:
        _cents(typed)
    assert (refused.value.status, refused.value.detail.startswith(reason)) == (422, True)


@pytest.mark.parametrize("typed", ["", "0", "-1", "1.5", "x", "1000001"])
def test_a_tampered_version_is_refused(typed: str) -> None:
    with pytest.raises(Problem, match="version: the case's version"):
        _version(typed)
    assert _version("7") == 7
