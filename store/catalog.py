"""Catalog and stock levels, as each shop's merchant manages them (the freight rule is the
shop's: store/shops.py)."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import DomainError, ErrorCode
from domain.models import SkuInfo
from store.tables import SkuRow, StockRow


def sku_info(row: SkuRow) -> SkuInfo:
    return SkuInfo.model_validate(row, from_attributes=True)


async def shop_of(session: AsyncSession, sku: str) -> str | None:
    """The shop a SKU belongs to (None: no such SKU)."""
    shop_id: str | None = await session.scalar(select(SkuRow.shop_id).where(SkuRow.sku == sku))
    return shop_id


async def put_sku(session: AsyncSession, info: SkuInfo) -> SkuInfo:
    """Make or change a SKU; its shop stays the one it was made in (the caller checks)."""
    row = await session.get(SkuRow, info.sku)
    data = info.model_dump(mode="json")
    if row is None:
        session.add(SkuRow(**data))
    else:
        for k, v in data.items():
            setattr(row, k, v)
    await session.flush()
    return info


async def list_skus(
    session: AsyncSession, shop_id: str | None = None
) -> list[tuple[SkuInfo, list[StockRow]]]:
    """Every SKU with its stock rows (one shop's, when named)."""
    skus_q = select(SkuRow).order_by(SkuRow.sku)
    stock_q = select(StockRow).order_by(StockRow.sku, StockRow.location)
    if shop_id is not None:
        skus_q = skus_q.where(SkuRow.shop_id == shop_id)
        stock_q = stock_q.where(
            StockRow.sku.in_(select(SkuRow.sku).where(SkuRow.shop_id == shop_id))
        )
    skus = list(await session.scalars(skus_q))
    stock = list(await session.scalars(stock_q))
    return [(sku_info(s), [r for r in stock if r.sku == s.sku]) for s in skus]


async def get_sku(session: AsyncSession, sku: str) -> tuple[SkuInfo, list[StockRow]] | None:
    row = await session.get(SkuRow, sku)
    if row is None:
        return None
    stock = await session.scalars(
        select(StockRow).where(StockRow.sku == sku).order_by(StockRow.location)
    )
    return sku_info(row), list(stock)


async def put_stock(session: AsyncSession, sku: str, location: str, on_hand: int) -> StockRow:
    """Set on-hand units; refused below what open orders have locked."""
    if await session.get(SkuRow, sku) is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"unknown SKU {sku}")
    rows = await session.scalars(
        select(StockRow).where(StockRow.sku == sku, StockRow.location == location).with_for_update()
    )
    row = rows.first()
    if row is None:
        row = StockRow(sku=sku, location=location, on_hand=0, locked=0)
        session.add(row)
    if on_hand < row.locked:
        raise DomainError(
            ErrorCode.INVALID_TRANSITION,
            f"{row.locked} units are locked by open orders; on_hand cannot go below",
            {"locked": row.locked},
        )
    row.on_hand = on_hand
    await session.flush()
    return row
