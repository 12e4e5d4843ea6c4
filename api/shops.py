"""Shops (多商户): an admin opens one; anyone reads its name and customer-service phone."""

from datetime import UTC, datetime

from fastapi import APIRouter, Path

from api.deps import Admin, DatabaseDep, SessionDep, SettingsDep
from api.errors import Problem
from domain.errors import ErrorCode
from domain.models import Shop
from store import shops

router = APIRouter(tags=["shops"])
ShopPath = Path(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")


@router.post("/admin/shops", status_code=201, response_model=Shop)
async def create_shop(body: Shop, _: Admin, db: DatabaseDep, settings: SettingsDep) -> Shop:
    """A new shop; the same body again answers the shop, another body under its id is 409."""
    async with db.transaction() as session:
        return await shops.create(session, body, datetime.now(UTC), settings.service_phone)


@router.get("/shops/{shop_id}", response_model=Shop)
async def get_shop(session: SessionDep, settings: SettingsDep, shop_id: str = ShopPath) -> Shop:
    shop = await shops.get(session, shop_id, settings.service_phone)
    if shop is None:
        raise Problem(ErrorCode.NOT_FOUND, f"no shop {shop_id}")
    return shop
