"""Wallets over HTTP: idempotent top-ups, and who may read a wallet."""

import pytest

from tests.e2e.harness import Stack, expect_problem, ok

pytestmark = pytest.mark.e2e


async def test_a_top_up_retried_with_its_key_credits_once(stack: Stack) -> None:
    buyer = stack.buyer()
    path = f"/wallets/{buyer.id}/top-up"
    headers = stack.admin.headers | {"Idempotency-Key": "top-up-1"}
    first = ok(await stack.http.post(path, json={"amount_cents": 3_000}, headers=headers))
    again = ok(await stack.http.post(path, json={"amount_cents": 3_000}, headers=headers))
    assert first["balance_cents"] == again["balance_cents"] == 3_000
    expect_problem(
        await stack.http.post(path, json={"amount_cents": 9_000}, headers=headers),
        409,
        "IDEMPOTENCY_CONFLICT",
    )
    assert (await stack.wallet(buyer))["balance_cents"] == 3_000


async def test_a_wallet_is_read_by_its_buyer_and_admins_only(stack: Stack) -> None:
    buyer, other = stack.buyer(), stack.buyer()
    path = f"/wallets/{buyer.id}"
    assert ok(await stack.http.get(path, headers=buyer.headers))["balance_cents"] == 0
    assert ok(await stack.http.get(path, headers=stack.admin.headers))["buyer_id"] == buyer.id
    expect_problem(await stack.http.get(path, headers=other.headers), 404, "NOT_FOUND")
    expect_problem(await stack.http.get(path, headers=stack.merchant.headers), 403, "FORBIDDEN")
