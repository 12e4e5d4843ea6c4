"""Shops (多商户): each owns its SKUs, orders and cases, and keeps its freight rule."""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import DomainError, ErrorCode
from domain.models import FreightPolicy, FreightRule, Shop
from store.tables import ShopRow

MAX_SHOPS_LISTED = 1000


def _shop(row: ShopRow, fallback_phone: str) -> Shop:
    return Shop(id=row.id, name=row.name, service_phone=row.service_phone or fallback_phone)


async def create(session: AsyncSession, shop: Shop, now: datetime, fallback_phone: str) -> Shop:
    """A new shop; the same shop again is the shop, another under its id a conflict."""
    row = await session.get(ShopRow, shop.id)
    if row is None:
        session.add(
            ShopRow(id=shop.id, name=shop.name, service_phone=shop.service_phone, created_at=now)
        )
        try:
            await session.flush()
        except IntegrityError:  # made at the same moment by another request
            raise DomainError(ErrorCode.SHOP_EXISTS, f"shop {shop.id} exists") from None
        return shop
    if _shop(row, fallback_phone) != shop:
        raise DomainError(ErrorCode.SHOP_EXISTS, f"shop {shop.id} exists, with other details")
    return shop


async def get(session: AsyncSession, shop_id: str, fallback_phone: str) -> Shop | None:
    """The shop; `default`'s phone, unless set, is the deployment's (ORDERS_SERVICE_PHONE)."""
    row = await session.get(ShopRow, shop_id)
    return None if row is None else _shop(row, fallback_phone)


async def exists(session: AsyncSession, shop_id: str) -> bool:
    return await session.get(ShopRow, shop_id) is not None


async def names(session: AsyncSession) -> dict[str, str]:
    """Every shop's name by id, for the console's filter (a platform has tens, not millions)."""
    rows = await session.execute(
        select(ShopRow.id, ShopRow.name).order_by(ShopRow.id).limit(MAX_SHOPS_LISTED)
    )
    return {shop_id: name for shop_id, name in rows}


async def freight_rule(session: AsyncSession, shop_id: str) -> FreightRule:
    """The shop's rule; a shop without one ships free, in one package."""
    row = await session.get(ShopRow, shop_id)
    if row is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no shop {shop_id}")
    if row.freight_flat_cents is None:
        return FreightRule()
    return FreightRule(
        flat_cents=row.freight_flat_cents,
        free_above_cents=row.freight_free_above_cents,
        policy=FreightPolicy(row.freight_policy or FreightPolicy.ONE_PACKAGE),
    )


async def put_freight_rule(session: AsyncSession, shop_id: str, rule: FreightRule) -> FreightRule:
    row = await session.get(ShopRow, shop_id)
    if row is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no shop {shop_id}")
    row.freight_flat_cents = rule.flat_cents
    row.freight_free_above_cents = rule.free_above_cents
    row.freight_policy = rule.policy.value
    await session.flush()
    return rule
