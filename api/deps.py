"""Dependencies as `Annotated` aliases: settings, database, Temporal client, current user.

All are `async def`: FastAPI runs a plain `def` dependency in a thread pool, a thread hop per
dependency per request (a profile put them at a twelfth of the API's time)."""

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request, params
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from api.auth import Role, User, decode, token_rules
from api.errors import Problem
from domain.errors import ErrorCode
from gateways.payments import PaymentGatewayClient
from runtime.relay import Relay
from runtime.settings import Settings
from store.blobs import BlobStore
from store.db import Database


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def _client(request: Request) -> Client:
    client: Client = request.app.state.temporal
    return client


async def _gateway(request: Request) -> PaymentGatewayClient:
    gateway: PaymentGatewayClient = request.app.state.gateway
    return gateway


async def _relay(request: Request) -> Relay:
    relay: Relay = request.app.state.relay
    return relay


async def _blobs(request: Request) -> BlobStore:
    blobs: BlobStore = request.app.state.blobs
    return blobs


Clock = Callable[[], Awaitable[datetime]]


async def wall_clock() -> datetime:
    return datetime.now(UTC)


async def _now(request: Request) -> datetime:
    """The time a placement is taken at: the wall clock (the Temporal server's, in tests on
    the time-skipping server, so a deadline saved by the API is the workflow's deadline)."""
    clock: Clock = request.app.state.clock
    return await clock()


SettingsDep = Annotated[Settings, Depends(_settings)]
NowDep = Annotated[datetime, Depends(_now)]
RelayDep = Annotated[Relay, Depends(_relay)]
BlobsDep = Annotated[BlobStore, Depends(_blobs)]
DatabaseDep = Annotated[Database, Depends(_db)]
TemporalDep = Annotated[Client, Depends(_client)]
GatewayDep = Annotated[PaymentGatewayClient, Depends(_gateway)]


async def _session(db: DatabaseDep) -> AsyncIterator[AsyncSession]:
    """A read session (writes go through `db.transaction()`)."""
    async with db.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(_session)]


_bearer = HTTPBearer(auto_error=False, description="a JWT: `make run` prints demo tokens")
# the same scheme where a token is optional: the OpenAPI document says so (api/openapi.py)
OPTIONAL_BEARER = "OptionalBearer"
_optional_bearer = HTTPBearer(auto_error=False, scheme_name=OPTIONAL_BEARER)


async def _user(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    if credentials is None or not credentials.credentials:
        raise Problem(ErrorCode.UNAUTHENTICATED, "missing bearer token")
    return decode(credentials.credentials.strip(), settings.jwt_secret, token_rules(settings))


def require_role(user: User, *roles: Role) -> User:
    if user.role not in roles:
        raise Problem(ErrorCode.FORBIDDEN, f"this needs role {' or '.join(roles)}")
    return user


def _role(*roles: Role) -> params.Depends:
    async def check(user: Annotated[User, Depends(_user)]) -> User:
        return require_role(user, *roles)

    guard: params.Depends = Depends(check)
    return guard


async def _maybe_user(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_optional_bearer)],
) -> User | None:
    """A route anyone may call, showing staff more: no token is anyone; a bad one is 401."""
    if credentials is None or not credentials.credentials:
        return None
    return await _user(settings, credentials)


CurrentUser = Annotated[User, Depends(_user)]
MaybeUser = Annotated[User | None, Depends(_maybe_user)]
Buyer = Annotated[User, _role(Role.BUYER)]
Merchant = Annotated[User, _role(Role.MERCHANT, Role.ADMIN)]
Admin = Annotated[User, _role(Role.ADMIN)]
admin_only = _role(Role.ADMIN)  # as a route's dependency
