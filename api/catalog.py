"""Catalog, stock per location and the freight rule (merchants write, anyone reads)."""

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field, StrictBool, StrictInt

from api.auth import Role, User
from api.deps import DatabaseDep, MaybeUser, Merchant, SessionDep
from api.errors import Problem
from domain.errors import ErrorCode
from domain.models import FreightRule, ProductType, SkuInfo, StockPolicy, Text
from store import catalog
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


def _is_staff(user: User | None) -> bool:
    return user is not None and user.role in (Role.MERCHANT, Role.ADMIN)


@router.get("/skus", response_model=list[SkuOut])
async def list_skus(session: SessionDep, user: MaybeUser) -> list[SkuOut]:
    staff = _is_staff(user)
    return [_sku(info, rows, staff) for info, rows in await catalog.list_skus(session)]


@router.get("/skus/{sku}", response_model=SkuOut)
async def get_sku(session: SessionDep, user: MaybeUser, sku: str = SkuPath) -> SkuOut:
    found = await catalog.get_sku(session, sku)
    if found is None:
        raise Problem(ErrorCode.NOT_FOUND, f"no SKU {sku}")
    return _sku(*found, staff=_is_staff(user))


@router.put("/skus/{sku}", response_model=SkuOut)
async def put_sku(body: SkuBody, _: Merchant, db: DatabaseDep, sku: str = SkuPath) -> SkuOut:
    async with db.transaction() as session:
        await catalog.put_sku(session, SkuInfo(sku=sku, **body.model_dump()))
        found = await catalog.get_sku(session, sku)
    assert found is not None
    return _sku(*found)


@router.put("/skus/{sku}/stock/{location}", response_model=StockOut)
async def put_stock(
    body: StockBody,
    _: Merchant,
    db: DatabaseDep,
    sku: str = SkuPath,
    location: str = LocationPath,
) -> StockOut:
    async with db.transaction() as session:
        return _stock(await catalog.put_stock(session, sku, location, body.on_hand))


@router.get("/freight-rule", response_model=FreightRule)
async def get_freight_rule(session: SessionDep) -> FreightRule:
    return await catalog.freight_rule(session)


@router.put("/freight-rule", response_model=FreightRule)
async def put_freight_rule(body: FreightRule, _: Merchant, db: DatabaseDep) -> FreightRule:
    async with db.transaction() as session:
        return await catalog.put_freight_rule(session, body)
