"""Bearer tokens: a bounded lifetime, and the issuer and audience a deployment names."""

import jwt
import pytest

from api.auth import MAX_TTL_SECONDS, Role, TokenRules, decode, mint, token_rules
from api.errors import Problem
from runtime.settings import Settings

SECRET = "unit-secret-0123456789abcdefghijklmnop"
NAMED = TokenRules(issuer="orders.example", audience="orders-api")


def refused(token: str, rules: TokenRules, why: str) -> None:
    with pytest.raises(Problem) as info:
        decode(token, SECRET, rules)
    assert (info.value.code, info.value.status) == ("UNAUTHENTICATED", 401)
    assert why in info.value.detail


def test_a_token_living_longer_than_the_bound_is_refused() -> None:
    refused(mint(SECRET, "b-1", Role.BUYER, 31 * 365 * 86_400), TokenRules(), "lives too long")
    refused(mint(SECRET, "b-1", Role.BUYER, 3_601), TokenRules(max_ttl_seconds=3_600), "too long")
    assert decode(mint(SECRET, "b-1", Role.BUYER), SECRET).id == "b-1"  # the default: 30 days
    assert decode(mint(SECRET, "b-1", Role.BUYER, MAX_TTL_SECONDS - 5), SECRET).role is Role.BUYER


def test_a_named_issuer_and_audience_are_required_and_checked() -> None:
    refused(mint(SECRET, "a-1", Role.ADMIN), NAMED, 'Token is missing the "iss" claim')
    wrong_iss = TokenRules(issuer="elsewhere", audience="orders-api")
    refused(mint(SECRET, "a-1", Role.ADMIN, rules=wrong_iss), NAMED, "Invalid issuer")
    wrong_aud = TokenRules(issuer="orders.example", audience="another-api")
    refused(mint(SECRET, "a-1", Role.ADMIN, rules=wrong_aud), NAMED, "Audience doesn't match")
    user = decode(mint(SECRET, "a-1", Role.ADMIN, rules=NAMED), SECRET, NAMED)
    assert (user.id, user.role) == ("a-1", Role.ADMIN)
    claims = jwt.decode(
        mint(SECRET, "a-1", Role.ADMIN, rules=NAMED),
        SECRET,
        algorithms=["HS256"],
        audience="orders-api",
    )
    assert (claims["iss"], claims["aud"]) == ("orders.example", "orders-api")


def test_the_rules_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_TOKEN_MAX_TTL_SECONDS", "3600")
    monkeypatch.setenv("ORDERS_JWT_ISSUER", "orders.example")
    monkeypatch.setenv("ORDERS_JWT_AUDIENCE", "orders-api")
    assert token_rules(Settings()) == TokenRules(3_600, "orders.example", "orders-api")
    monkeypatch.setenv("ORDERS_TOKEN_MAX_TTL_SECONDS", "10")
    with pytest.raises(ValueError, match="token_max_ttl_seconds"):
        Settings()


def test_a_merchants_token_names_its_shop_and_without_one_acts_for_default() -> None:
    acme = decode(mint(SECRET, "m-1", Role.MERCHANT, shop="acme"), SECRET)
    assert (acme.shop, acme.only_shop, acme.actor.shop) == ("acme", "acme", "acme")
    plain = decode(mint(SECRET, "m-2", Role.MERCHANT), SECRET)
    assert (plain.shop, plain.only_shop) == ("default", "default")
    admin = decode(mint(SECRET, "a-1", Role.ADMIN), SECRET)
    assert (admin.shop, admin.only_shop) == (None, None)  # every shop
    # a shop's merchant sees its shop's orders only; an admin all; a buyer their own
    assert acme.can_see("b-1", "acme") and not acme.can_see("b-1", "default")
    assert plain.can_see("b-1", "default") and not plain.can_see("b-1", "acme")
    assert admin.can_see("b-1", "acme")
    buyer = decode(mint(SECRET, "b-1", Role.BUYER), SECRET)
    assert buyer.can_see("b-1", "acme") and not buyer.can_see("b-2", "acme")


@pytest.mark.parametrize(
    ("role", "shop", "why"),
    [(Role.BUYER, "acme", "only a merchant's"), (Role.MERCHANT, "Not A Shop", "invalid shop")],
)
def test_a_shop_claim_is_a_merchants_and_well_formed(role: Role, shop: str, why: str) -> None:
    with pytest.raises(Problem) as info:
        decode(mint(SECRET, "u-1", role, shop=shop), SECRET)
    assert (info.value.code, info.value.status) == ("UNAUTHENTICATED", 401)
    assert why in info.value.detail
    assert decode(mint(SECRET, "u-1", Role.MERCHANT, shop="acme"), SECRET).shop == "acme"
