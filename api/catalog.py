"""Catalog, stock per location and the freight rule: each shop's merchant writes its own,
anyone reads."""

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field, StrictBool, StrictInt
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Role, User
from api.deps import DatabaseDep, MaybeUser, Merchant, SessionDep
from api.errors import Problem
from domain.carriers import CARRIERS
from domain.errors import ErrorCode
from domain.models import (
    DEFAULT_SHOP,
    FreightRule,
    ProductType,
    ShopId,
    SkuInfo,
    StockPolicy,
    Text,
)
from store import catalog, shops
from store.tables import StockRow

router = APIRouter(tags=["catalog"])
SkuPath = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# its own object: FastAPI writes the parameter's name into a default's FieldInfo (alias), so
# one Path() shared by `sku` and `location` made `location` read the SKU from the URL
LocationPath = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class StockOut(BaseModel):
    location: str
    on_hand: int | None  # merchants and admins only (null for anyone else)
    locked: int | None
    available: int


class SkuOut(SkuInfo):
    stock: list[StockOut]
    available: int


class SkuBody(BaseModel):
    # the shop a new SKU is made in: a merchant's own (said or not); an admin names any
    # (else `default`). A SKU stays in the shop it was made in.
    shop_id: ShopId | None = None
    title: Text = Field(min_length=1, max_length=200)
    price_cents: StrictInt = Field(ge=0, le=100_000_000)
    product_type: ProductType
    stock_policy: StockPolicy
    limit_per_buyer: StrictInt | None = Field(None, ge=1, le=999)
    limit_window_days: StrictInt | None = Field(None, ge=1, le=3650)
    payment_window_minutes: StrictInt | None = Field(None, ge=1, le=1440)
    listed: StrictBool = True


class StockBody(BaseModel):
    on_hand: StrictInt = Field(ge=0, le=100_000_000)


def _stock(row: StockRow) -> StockOut:
    return StockOut(
        location=row.location,
        on_hand=row.on_hand,
        locked=row.locked,
        available=row.on_hand - row.locked,
    )


def _sku(info: SkuInfo, rows: list[StockRow], staff: bool = True) -> SkuOut:
    """Anyone sees what can be bought where; a location's on-hand and locked units are the
    merchant's business (and an admin's)."""
    stock = [_stock(r) for r in rows]
    if not staff:
        stock = [s.model_copy(update={"on_hand": None, "locked": None}) for s in stock]
    return SkuOut(**info.model_dump(), stock=stock, available=sum(s.available for s in stock))


def _is_staff(user: User | None, shop_id: str) -> bool:
    """Who sees a SKU's on-hand and locked units: its shop's merchant, and admins."""
    if user is None or user.role is Role.BUYER:
        return False
    return user.role is Role.ADMIN or user.shop == shop_id


ShopQuery = Annotated[ShopId | None, Query(description="one shop's only")]


@router.get("/skus", response_model=list[SkuOut])
async def list_skus(
    session: SessionDep, user: MaybeUser, shop_id: ShopQuery = None
) -> list[SkuOut]:
    return [
        _sku(info, rows, _is_staff(user, info.shop_id))
        for info, rows in await catalog.list_skus(session, shop_id)
    ]


@router.get("/skus/{sku}", response_model=SkuOut)
async def get_sku(session: SessionDep, user: MaybeUser, sku: str = SkuPath) -> SkuOut:
    found = await catalog.get_sku(session, sku)
    if found is None:
        raise Problem(ErrorCode.NOT_FOUND, f"no SKU {sku}")
    return _sku(*found, staff=_is_staff(user, found[0].shop_id))


def own_shop(user: User, named: str | None) -> str:
    """The shop a merchant's write is for: its own (naming another is 403); an admin's is the
    one named, else `default`."""
    if user.role is Role.ADMIN:
        return named or DEFAULT_SHOP
    assert user.shop is not None
    if named not in (None, user.shop):
        raise Problem(ErrorCode.FORBIDDEN, f"this token acts for shop {user.shop} only")
    return user.shop


async def _existing_shop(session: AsyncSession, shop_id: str) -> str:
    if not await shops.exists(session, shop_id):
        raise Problem(ErrorCode.VALIDATION, f"shop_id: no shop {shop_id}")
    return shop_id


async def _writable_sku(session: AsyncSession, user: User, sku: str) -> str | None:
    """The shop of an existing SKU this user may write (another shop's is 403), else None."""
    shop_id = await catalog.shop_of(session, sku)
    if shop_id is not None and user.role is not Role.ADMIN and user.shop != shop_id:
        raise Problem(ErrorCode.FORBIDDEN, f"SKU {sku} belongs to another shop")
    return shop_id


@router.put("/skus/{sku}", response_model=SkuOut)
async def put_sku(body: SkuBody, user: Merchant, db: DatabaseDep, sku: str = SkuPath) -> SkuOut:
    async with db.transaction() as session:
        shop_id = await _writable_sku(session, user, sku)
        if shop_id is None:  # a new SKU
            shop_id = await _existing_shop(session, own_shop(user, body.shop_id))
        elif body.shop_id not in (None, shop_id):
            raise Problem(
                ErrorCode.VALIDATION, f"shop_id: SKU {sku} stays in shop {shop_id}, its own"
            )
        info = SkuInfo(sku=sku, **(body.model_dump() | {"shop_id": shop_id}))
        await catalog.put_sku(session, info)
        found = await catalog.get_sku(session, sku)
    assert found is not None
    return _sku(*found)


@router.put("/skus/{sku}/stock/{location}", response_model=StockOut)
async def put_stock(
    body: StockBody,
    user: Merchant,
    db: DatabaseDep,
    sku: str = SkuPath,
    location: str = LocationPath,
) -> StockOut:
    async with db.transaction() as session:
        await _writable_sku(session, user, sku)
        return _stock(await catalog.put_stock(session, sku, location, body.on_hand))


@router.get("/freight-rule", response_model=FreightRule)
async def get_freight_rule(
    session: SessionDep, user: MaybeUser, shop_id: ShopQuery = None
) -> FreightRule:
    """A shop's rule: the one named, else a merchant's own, else `default`'s."""
    if shop_id is None:
        shop_id = user.shop if user is not None and user.shop else DEFAULT_SHOP
    return await shops.freight_rule(session, shop_id)


@router.put("/freight-rule", response_model=FreightRule)
async def put_freight_rule(
    body: FreightRule, user: Merchant, db: DatabaseDep, shop_id: ShopQuery = None
) -> FreightRule:
    async with db.transaction() as session:
        return await shops.put_freight_rule(session, own_shop(user, shop_id), body)


class CarrierOut(BaseModel):
    code: str
    name: str


@router.get("/carriers", response_model=list[CarrierOut])
async def list_carriers() -> list[CarrierOut]:
    """The carriers a package ships with: a ship or return names one by its code (any case)."""
    return [CarrierOut(code=code, name=name) for code, name in CARRIERS.items()]
