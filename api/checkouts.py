"""Checkouts (拆单 by shop): a cart across shops becomes one order per shop, placed together
(all or none), each with its own workflow; the checkout shows them and what is left to pay."""

from datetime import UTC, datetime

from fastapi import APIRouter, Path
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from api import messaging
from api.auth import Role, User
from api.deps import (
    Buyer,
    CurrentUser,
    DatabaseDep,
    GatewayDep,
    NowDep,
    RelayDep,
    SessionDep,
    SettingsDep,
    TemporalDep,
)
from api.errors import Problem
from api.orders import (
    IdempotencyKey,
    IntentBody,
    IntentOut,
    PayBody,
    PlaceOrderBody,
    open_intent,
)
from api.views import OrderView, order_view
from domain.checkout import share_event, split, status_of
from domain.errors import ErrorCode
from domain.messages import CheckoutInput, InboxEvent, PaymentNotice
from domain.models import OrderStatus
from domain.stock import quantities
from store import checkouts, payments
from store.db import Database

router = APIRouter(tags=["checkouts"])
CheckoutPath = Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")


class CheckoutView(BaseModel):
    id: str
    buyer_id: str
    status: OrderStatus  # domain.checkout.status_of
    orders: list[OrderView]  # one per shop
    total_cents: int  # the unpaid orders' totals: what one payment of the checkout pays
    paid_cents: int
    payment_deadline: datetime | None  # the soonest of its unpaid orders'


def view(checkout: checkouts.Checkout) -> CheckoutView:
    unpaid = [o for o in checkout.orders if o.status is OrderStatus.PENDING_PAYMENT]
    return CheckoutView(
        id=checkout.id,
        buyer_id=checkout.buyer_id,
        status=status_of(checkout.orders),
        orders=[order_view(o) for o in checkout.orders],
        total_cents=sum(o.total_cents for o in unpaid),
        paid_cents=sum(o.paid_cents for o in checkout.orders),
        payment_deadline=min((o.payment_deadline for o in unpaid), default=None),
    )


@router.post("/checkouts", status_code=201, response_model=CheckoutView)
async def place_checkout(
    body: PlaceOrderBody,
    user: Buyer,
    client: TemporalDep,
    db: DatabaseDep,
    settings: SettingsDep,
    now: NowDep,
    key: IdempotencyKey = None,
) -> CheckoutView:
    """One order per shop of the cart, in one transaction: a line that cannot be placed
    refuses the whole checkout, naming every such line's reason, and leaves nothing. The
    same Idempotency-Key again answers the same checkout."""
    checkout_id = messaging.keyed_id(key, user.id, "checkout")
    inp = CheckoutInput(
        checkout_id=checkout_id,
        buyer_id=user.id,
        lines=body.lines,
        address=body.address,
        timings=settings.timings(),
        now=now,
    )

    def order_id_of(shop_id: str) -> str:
        return messaging.keyed_id(checkout_id, "order", shop_id)

    placed = await checkouts.place(db, inp, order_id_of, settings.max_unpaid_orders)
    asked = quantities((line.sku, line.quantity) for line in body.lines)
    got = quantities((x.sku, x.quantity) for o in placed.orders for x in o.lines)
    if asked != got:
        raise Problem(
            ErrorCode.IDEMPOTENCY_CONFLICT,
            "this Idempotency-Key was used for a different cart",
            checkout_id=checkout_id,
        )
    await messaging.start_placed(
        client,
        db,
        settings.task_queue,
        placed.orders,
        f"checkout {checkout_id}",
        checkout_id=checkout_id,
    )
    return view(placed)


@router.get("/checkouts/{checkout_id}", response_model=CheckoutView)
async def get_checkout(
    user: CurrentUser, session: SessionDep, checkout_id: str = CheckoutPath
) -> CheckoutView:
    """Its buyer's and admins' (a merchant sees its own shop's order, not the checkout)."""
    found = await checkouts.get(session, checkout_id)
    if found is None or not (
        user.role is Role.ADMIN or (user.role is Role.BUYER and user.id == found.buyer_id)
    ):
        raise Problem(ErrorCode.NOT_FOUND, f"no checkout {checkout_id}")
    return view(found)


async def _checkout(session: AsyncSession, user: User, checkout_id: str) -> checkouts.Checkout:
    """The buyer's own checkout (another's is not found)."""
    found = await checkouts.get(session, checkout_id)
    if found is None or found.buyer_id != user.id:
        raise Problem(ErrorCode.NOT_FOUND, f"no checkout {checkout_id}")
    return found


async def _unpaid_shares(db: Database, user: User, checkout_id: str) -> dict[str, int]:
    """What one payment of the buyer's checkout pays: each unpaid order's total."""
    async with db.sessions() as session:
        found = await _checkout(session, user, checkout_id)
    shares = {o.id: o.total_cents for o in found.orders if o.status is OrderStatus.PENDING_PAYMENT}
    if not shares:
        raise Problem(ErrorCode.INVALID_TRANSITION, "no order of this checkout is left to pay")
    return shares


@router.post("/checkouts/{checkout_id}/payment-intents", status_code=201, response_model=IntentOut)
async def checkout_payment_intent(
    body: IntentBody,
    user: Buyer,
    db: DatabaseDep,
    gateway: GatewayDep,
    settings: SettingsDep,
    checkout_id: str = CheckoutPath,
) -> IntentOut:
    """One gateway payment for every order of the checkout still unpaid, each for its own
    total: its callback names the checkout, and each order takes its share (an order closed
    meanwhile refunds its share; the others keep theirs)."""
    shares = await _unpaid_shares(db, user, checkout_id)
    total = sum(shares.values())
    return await open_intent(db, gateway, settings, checkout_id, body.channel, total, shares)


@router.post("/checkouts/{checkout_id}/pay", response_model=CheckoutView)
async def pay_checkout(
    body: PayBody,
    user: Buyer,
    db: DatabaseDep,
    relay: RelayDep,
    checkout_id: str = CheckoutPath,
    key: IdempotencyKey = None,
) -> CheckoutView:
    """Every order of the checkout still unpaid, from the balance or the credit line in one
    debit (too little: 409 INSUFFICIENT_FUNDS, nothing charged). Each order takes its share
    as it takes any payment, a moment later; one that closed meanwhile gives its share back.
    With an Idempotency-Key, a retried request charges once."""
    txn_id = f"{body.channel.value}-{checkout_id}-{messaging.keyed_id(key, user.id, length=12)}"
    if key is not None:  # the same request again: charged once, answered as before
        async with db.sessions() as session:
            if await payments.in_ledger(session, [txn_id]):
                return view(await _checkout(session, user, checkout_id))
    shares = await _unpaid_shares(db, user, checkout_id)
    payment = PaymentNotice(
        txn_id=txn_id,
        channel=body.channel,
        amount_cents=sum(shares.values()),
        paid_at=datetime.now(UTC),
        order_id=checkout_id,
    )
    parts = split(payment, shares)
    async with db.transaction() as write:
        await payments.debit_once(write, user.id, parts)
    for order_id, part in parts.items():
        event = InboxEvent(
            source="payment",
            event_id=share_event(f"wallet:{txn_id}", order_id),
            order_id=order_id,
            payload=part.model_dump_json(),
        )
        await relay.accept(event)
    async with db.sessions() as session:
        paid = await checkouts.get(session, checkout_id)
    assert paid is not None
    return view(paid)
