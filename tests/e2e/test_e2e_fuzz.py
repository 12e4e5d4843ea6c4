"""A slice of `make fuzz` in every test run: schemathesis, every check on, a few examples per
operation, as a buyer, a merchant and an admin, against the real processes."""

from pathlib import Path

import pytest

from api.auth import Role
from scripts.fuzz import fuzz

pytestmark = pytest.mark.e2e


async def test_schemathesis_finds_nothing_for_any_role(tmp_path: Path) -> None:
    roles = [Role.BUYER, Role.MERCHANT, Role.ADMIN]
    failed = await fuzz(tmp_path, roles, examples=3, max_time=None)
    reports = sorted(str(p) for p in tmp_path.glob("report-*/*.xml"))
    assert len(reports) == 3, reports  # each role's run happened and wrote its report
    assert failed == 0, f"schemathesis found failures: see {reports}"
