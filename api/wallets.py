"""Buyer wallets: balance and credit line (额度)."""

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field, StrictInt

from api.auth import Role
from api.deps import Admin, CurrentUser, DatabaseDep, SessionDep
from api.errors import Problem
from api.orders import IdempotencyKey
from domain.errors import ErrorCode
from store import payments
from store.tables import WalletRow

router = APIRouter(prefix="/wallets", tags=["wallets"])
BuyerPath = Path(min_length=1, max_length=64)


class AmountBody(BaseModel):
    amount_cents: StrictInt = Field(ge=0, le=10_000_000_000)


class WalletOut(BaseModel):
    buyer_id: str
    balance_cents: int
    credit_limit_cents: int
    credit_used_cents: int


def _out(row: WalletRow) -> WalletOut:
    return WalletOut.model_validate(row, from_attributes=True)


@router.get("/{buyer_id}", response_model=WalletOut)
async def get_wallet(
    user: CurrentUser, session: SessionDep, buyer_id: str = BuyerPath
) -> WalletOut:
    """Its buyer's and admins' only; a read, never a write."""
    if user.role is Role.BUYER and user.id != buyer_id:
        raise Problem(ErrorCode.NOT_FOUND, "no such wallet")
    if user.role is Role.MERCHANT:
        raise Problem(ErrorCode.FORBIDDEN, "wallets are their buyer's and admins' only")
    return _out(await payments.read_wallet(session, buyer_id))


@router.post("/{buyer_id}/top-up", response_model=WalletOut)
async def top_up(
    body: AmountBody,
    _: Admin,
    db: DatabaseDep,
    buyer_id: str = BuyerPath,
    key: IdempotencyKey = None,
) -> WalletOut:
    """With an Idempotency-Key, a retried top-up (after a timeout) credits once."""
    if body.amount_cents <= 0:
        raise Problem(ErrorCode.VALIDATION, "amount_cents must be positive")
    async with db.transaction() as session:
        return _out(await payments.top_up(session, buyer_id, body.amount_cents, key))


@router.put("/{buyer_id}/credit-limit", response_model=WalletOut)
async def credit_limit(
    body: AmountBody, _: Admin, db: DatabaseDep, buyer_id: str = BuyerPath
) -> WalletOut:
    async with db.transaction() as session:
        return _out(await payments.set_credit_limit(session, buyer_id, body.amount_cents))
