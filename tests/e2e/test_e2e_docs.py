"""The walk-throughs in docs/ run as written: every ```sh block of a page, in order, in one
bash session (errors stop it), against what `make run` starts, fresh, with the exports
`make run` prints. A claim a page makes (`show '<claim>'`) that the code does not keep
fails here."""

import re
import subprocess
from pathlib import Path

import pytest

from api.auth import Role, mint
from runtime.settings import DEV_SECRETS
from scripts.cluster import ROOT, demo
from scripts.seed import DEMO_BUYER

pytestmark = pytest.mark.e2e
DOCS = ROOT / "docs"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)
# how a page says to start `make run` (its first `text` block), e.g.
# `rm -rf .data && ORDERS_SUPPLIER_CANCEL_WINDOW_SECONDS=5 make run`
START = re.compile(r"^```text\n(.*?)^```", re.S | re.M)
SETTING = re.compile(r"\b(ORDERS_[A-Z_]+)=(\S+)")


def blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text())


def start_settings(page: Path) -> dict[str, str]:
    """The ORDERS_* settings the page starts `make run` with."""
    start = START.search(page.read_text())
    assert start and "make run" in start.group(1), f"{page.name} says how it starts"
    return dict(SETTING.findall(start.group(1).split("make run")[0]))


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md") if blocks(p)))
async def test_a_walk_through_runs_as_written(page: str, tmp_path: Path) -> None:
    script = "set -euo pipefail\n" + "\n".join(blocks(DOCS / page))
    cluster = await demo(tmp_path, env=start_settings(DOCS / page))
    secret = DEV_SECRETS["jwt_secret"]
    env = cluster.env() | {
        "API": cluster.api_url,
        "BUYER": mint(secret, DEMO_BUYER, Role.BUYER),
        "MERCHANT": mint(secret, "merchant-1", Role.MERCHANT),
        "ADMIN": mint(secret, "admin-1", Role.ADMIN),
    }
    try:
        done = subprocess.run(
            ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
    finally:
        cluster.stop()
    assert done.returncode == 0, f"{page} stopped:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.stdout.count("\n") > 20  # it showed what it did
