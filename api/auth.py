"""Bearer JWT (HS256): claims `sub`, `role` (buyer | merchant | admin), `exp`."""

import time
from enum import StrEnum

import jwt
from pydantic import BaseModel

from api.errors import Problem
from domain.errors import ErrorCode
from domain.models import Actor


class Role(StrEnum):
    BUYER = "buyer"
    MERCHANT = "merchant"
    ADMIN = "admin"


class User(BaseModel):
    id: str
    role: Role

    @property
    def actor(self) -> Actor:
        return Actor(kind=self.role.value, id=self.id)

    def can_see(self, buyer_id: str) -> bool:
        return self.role is not Role.BUYER or self.id == buyer_id


def mint(secret: str, sub: str, role: Role, ttl_seconds: int = 30 * 86_400) -> str:
    now = int(time.time())
    return jwt.encode(
        {"sub": sub, "role": role.value, "iat": now, "exp": now + ttl_seconds},
        secret,
        algorithm="HS256",
    )


def decode(token: str, secret: str) -> User:
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["sub", "role", "exp"]}
        )
    except jwt.ExpiredSignatureError:
        raise Problem(ErrorCode.UNAUTHENTICATED, "token expired") from None
    except jwt.InvalidTokenError as err:
        raise Problem(ErrorCode.UNAUTHENTICATED, f"invalid token: {err}") from None
    try:
        return User(id=str(claims["sub"]), role=Role(claims["role"]))
    except ValueError:
        raise Problem(ErrorCode.UNAUTHENTICATED, "unknown role in token") from None


if __name__ == "__main__":
    import argparse

    from settings import get_settings

    parser = argparse.ArgumentParser(description="Mint a bearer token with ORDERS_JWT_SECRET")
    parser.add_argument("sub")
    parser.add_argument("role", choices=[r.value for r in Role])
    parser.add_argument("--ttl", type=int, default=30 * 86_400)
    args = parser.parse_args()
    print(mint(get_settings().jwt_secret, args.sub, Role(args.role), args.ttl))
