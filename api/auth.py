"""Bearer JWT (HS256): claims `sub`, `role` (buyer | merchant | admin), `exp`; `iss` and
`aud` where the deployment names them. A token may live at most `max_ttl_seconds`."""

import time
from dataclasses import dataclass
from enum import StrEnum

import jwt
from pydantic import BaseModel, model_validator

from api.errors import Problem
from domain.errors import ErrorCode
from domain.models import DEFAULT_SHOP, Actor, ShopId
from runtime.settings import Settings


class Role(StrEnum):
    BUYER = "buyer"
    MERCHANT = "merchant"
    ADMIN = "admin"


class User(BaseModel):
    id: str
    role: Role
    shop: ShopId | None = None  # a merchant's shop (its token's `shop` claim, else `default`)

    @model_validator(mode="after")
    def _a_merchant_has_a_shop(self) -> "User":
        if self.role is Role.MERCHANT and self.shop is None:
            self.shop = DEFAULT_SHOP
        return self

    @property
    def actor(self) -> Actor:
        return Actor(kind=self.role.value, id=self.id, shop=self.shop)

    def can_see(self, buyer_id: str, shop_id: str) -> bool:
        """A buyer sees their own, a merchant its shop's, an admin everything."""
        return self.actor.may_see(buyer_id, shop_id)

    @property
    def only_shop(self) -> str | None:
        """The one shop a list is narrowed to: a merchant's (an admin's lists span them all)."""
        return self.shop if self.role is Role.MERCHANT else None


MAX_TTL_SECONDS = 30 * 86_400


@dataclass(frozen=True)
class TokenRules:
    """What a token must satisfy beyond its signature (ORDERS_TOKEN_MAX_TTL_SECONDS,
    ORDERS_JWT_ISSUER, ORDERS_JWT_AUDIENCE)."""

    max_ttl_seconds: int = MAX_TTL_SECONDS
    issuer: str | None = None  # when set, required and checked
    audience: str | None = None


def token_rules(settings: Settings) -> TokenRules:
    return TokenRules(settings.token_max_ttl_seconds, settings.jwt_issuer, settings.jwt_audience)


def mint(
    secret: str,
    sub: str,
    role: Role,
    ttl_seconds: int = MAX_TTL_SECONDS,
    rules: TokenRules = TokenRules(),
    shop: str | None = None,
) -> str:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": sub,
        "role": role.value,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if shop is not None:
        claims["shop"] = shop
    if rules.issuer:
        claims["iss"] = rules.issuer
    if rules.audience:
        claims["aud"] = rules.audience
    return jwt.encode(claims, secret, algorithm="HS256")


def decode(token: str, secret: str, rules: TokenRules = TokenRules()) -> User:
    required = (
        ["sub", "role", "exp"] + ["iss"] * bool(rules.issuer) + ["aud"] * bool(rules.audience)
    )
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            issuer=rules.issuer,
            audience=rules.audience,
            options={"require": required},
        )
    except jwt.ExpiredSignatureError:
        raise Problem(ErrorCode.UNAUTHENTICATED, "token expired") from None
    except jwt.InvalidTokenError as err:
        raise Problem(ErrorCode.UNAUTHENTICATED, f"invalid token: {err}") from None
    if int(claims["exp"]) - time.time() > rules.max_ttl_seconds:
        raise Problem(
            ErrorCode.UNAUTHENTICATED,
            f"token lives too long: at most {rules.max_ttl_seconds} s from now",
        )
    try:
        role = Role(claims["role"])
    except ValueError:
        raise Problem(ErrorCode.UNAUTHENTICATED, "unknown role in token") from None
    shop = claims.get("shop")
    if shop is not None and role is not Role.MERCHANT:
        raise Problem(ErrorCode.UNAUTHENTICATED, "only a merchant's token names a shop")
    try:
        return User(id=str(claims["sub"]), role=role, shop=shop)
    except ValueError:
        raise Problem(ErrorCode.UNAUTHENTICATED, "invalid shop in token") from None


if __name__ == "__main__":
    import argparse

    from runtime.settings import get_settings

    parser = argparse.ArgumentParser(description="Mint a bearer token with ORDERS_JWT_SECRET")
    parser.add_argument("sub")
    parser.add_argument("role", choices=[r.value for r in Role])
    parser.add_argument("--ttl", type=int, default=MAX_TTL_SECONDS)
    parser.add_argument("--shop", help="a merchant's shop (default: the shop `default`)")
    args = parser.parse_args()
    if args.shop is not None and args.role != Role.MERCHANT:
        parser.error("--shop is for a merchant's token")
    settings = get_settings()
    rules = token_rules(settings)
    print(mint(settings.jwt_secret, args.sub, Role(args.role), args.ttl, rules, args.shop))
