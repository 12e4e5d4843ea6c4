"""A demo catalog, stock in two warehouses, a freight rule and a funded buyer.

Idempotent: SKUs, stock and wallets are only created when the catalog is empty.
"""

import asyncio

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import (
    DEFAULT_SHOP,
    FreightPolicy,
    FreightRule,
    ProductType,
    SkuInfo,
    StockPolicy,
)
from store import catalog, payments, shops
from store.db import Database
from store.tables import SkuRow

DEMO_SKUS = [
    (
        SkuInfo(
            sku="TEA-001",
            title="West Lake Longjing tea 250g",
            price_cents=5900,
            product_type=ProductType.SELF,
            stock_policy=StockPolicy.LOCK_ON_ORDER,
            limit_per_buyer=10,
            limit_window_days=30,
        ),
        {"WH-SH": 5, "WH-BJ": 3},
    ),
    (
        SkuInfo(
            sku="MUG-002",
            title="Celadon tea mug",
            price_cents=2500,
            product_type=ProductType.SELF,
            stock_policy=StockPolicy.DEDUCT_ON_PAYMENT,
        ),
        {"WH-SH": 50},
    ),
    (
        SkuInfo(
            sku="FLASH-003",
            title="Flash sale: Yixing teapot",
            price_cents=9900,
            product_type=ProductType.SELF,
            stock_policy=StockPolicy.LOCK_ON_ORDER,
            limit_per_buyer=1,
            limit_window_days=30,
            payment_window_minutes=15,
        ),
        {"WH-BJ": 10},
    ),
    (
        SkuInfo(
            sku="KEPLER-004",
            title="Kepler: Jingdezhen tea set",
            price_cents=4900,
            product_type=ProductType.KEPLER,
            stock_policy=StockPolicy.LOCK_ON_ORDER,
        ),
        {"SUP-KEPLER": 50},
    ),
    (
        SkuInfo(
            sku="VIRTUAL-005",
            title="Tea ceremony class (e-ticket)",
            price_cents=1900,
            product_type=ProductType.VIRTUAL,
            stock_policy=StockPolicy.DEDUCT_ON_PAYMENT,
        ),
        {"DIGITAL": 500},
    ),
    (
        SkuInfo(
            sku="DROP-006",
            title="Bamboo tea tray (ships from the maker)",
            price_cents=3900,
            product_type=ProductType.DROPSHIP,
            stock_policy=StockPolicy.LOCK_ON_ORDER,
        ),
        {"VENDOR-HZ": 30},
    ),
]
DEMO_BUYER = "buyer-1"


Catalog = list[tuple[SkuInfo, dict[str, int]]]


async def seed_catalog(
    session: AsyncSession,
    skus: Catalog,
    rule: FreightRule | None = None,
    wallets: dict[str, tuple[int, int]] | None = None,
) -> None:
    """SKUs with their stock per location, the freight rule, and (balance, credit) wallets."""
    for info, stock in skus:
        await catalog.put_sku(session, info)
        for location, on_hand in stock.items():
            await catalog.put_stock(session, info.sku, location, on_hand)
    if rule is not None:
        await shops.put_freight_rule(session, DEFAULT_SHOP, rule)
    for buyer_id, (balance, credit) in (wallets or {}).items():
        await payments.top_up(session, buyer_id, balance)
        await payments.set_credit_limit(session, buyer_id, credit)


async def seed(url: str) -> bool:
    db = Database(url)
    try:
        async with db.transaction() as session:
            if await session.scalar(select(func.count()).select_from(SkuRow)):
                return False
            await seed_catalog(
                session,
                DEMO_SKUS,
                FreightRule(
                    flat_cents=800, free_above_cents=9900, policy=FreightPolicy.ONE_PACKAGE
                ),
                {DEMO_BUYER: (200_000, 50_000)},
            )
        return True
    finally:
        await db.dispose()


if __name__ == "__main__":
    from runtime.settings import get_settings

    print("seeded" if asyncio.run(seed(get_settings().database_url)) else "catalog already there")
