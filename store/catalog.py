"""Catalog, stock levels and the freight rule, as the merchant manages them."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import DomainError, ErrorCode
from domain.models import FreightPolicy, FreightRule, SkuInfo
from store.tables import FreightRuleRow, SkuRow, StockRow


async def freight_rule(session: AsyncSession) -> FreightRule:
    row = await session.get(FreightRuleRow, 1)
    if row is None:
        return FreightRule()
    return FreightRule(
        flat_cents=row.flat_cents,
        free_above_cents=row.free_above_cents,
        policy=FreightPolicy(row.policy),
    )


async def put_freight_rule(session: AsyncSession, rule: FreightRule) -> FreightRule:
    row = await session.get(FreightRuleRow, 1)
    if row is None:
        row = FreightRuleRow(id=1, flat_cents=0, policy=rule.policy.value)
        session.add(row)
    row.flat_cents, row.free_above_cents, row.policy = (
        rule.flat_cents,
        rule.free_above_cents,
        rule.policy.value,
    )
    await session.flush()
    return rule


def sku_info(row: SkuRow) -> SkuInfo:
    return SkuInfo.model_validate(row, from_attributes=True)


async def put_sku(session: AsyncSession, info: SkuInfo) -> SkuInfo:
    row = await session.get(SkuRow, info.sku)
    data = info.model_dump(mode="json")
    if row is None:
        session.add(SkuRow(**data))
    else:
        for k, v in data.items():
            setattr(row, k, v)
    await session.flush()
    return info


async def list_skus(session: AsyncSession) -> list[tuple[SkuInfo, list[StockRow]]]:
    skus = list(await session.scalars(select(SkuRow).order_by(SkuRow.sku)))
    stock = list(await session.scalars(select(StockRow).order_by(StockRow.sku, StockRow.location)))
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
