"""Reviews (SPEC §7): the buyer reviews a completed order once; anyone reads a SKU's reviews."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from api import messaging
from api.deps import Buyer, DatabaseDep, SessionDep, TemporalDep
from api.errors import Problem
from api.views import OrderView
from domain.errors import ErrorCode
from domain.messages import ReviewRequest
from domain.models import OrderState, Sku
from domain.order import MAX_REVIEW_TEXT
from store import reviews
from workflows.order import OrderWorkflow

router = APIRouter(tags=["reviews"])


class ReviewBody(BaseModel):
    rating: int = Field(ge=1, le=5)
    text: str = Field("", max_length=MAX_REVIEW_TEXT)


class ReviewOut(BaseModel):
    rating: int
    text: str
    buyer: str  # masked: reviews are public
    verified_purchase: bool
    created_at: datetime


class ReviewPage(BaseModel):
    sku: str
    average: float | None
    count: int
    items: list[ReviewOut]
    next_cursor: str | None


def masked(buyer_id: str) -> str:
    return f"{buyer_id[0]}***{buyer_id[-1]}" if len(buyer_id) > 2 else "***"


@router.post("/orders/{order_id}/review", response_model=OrderView)
async def review(
    order_id: str, body: ReviewBody, user: Buyer, client: TemporalDep, db: DatabaseDep
) -> OrderState:
    """Once per completed order, within its after-sales window; AWAITING_REVIEW clears and the
    review shows under each SKU of the order."""
    req = ReviewRequest(rating=body.rating, text=body.text, actor=user.actor)
    return await messaging.act(client, db, user, order_id, OrderWorkflow.review, req)


@router.get("/skus/{sku}/reviews", response_model=ReviewPage)
async def sku_reviews(
    session: SessionDep,
    sku: Annotated[Sku, Path()],
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = Query(None, max_length=200),
) -> ReviewPage:
    """Newest first, with the rating summary; every review comes from a completed order."""
    try:
        rows, nxt = await reviews.page(session, sku, limit, cursor)
    except ValueError as err:
        raise Problem(ErrorCode.VALIDATION, str(err)) from None
    average, count = await reviews.summary(session, sku)
    items = [
        ReviewOut(
            rating=r.rating,
            text=r.text,
            buyer=masked(r.buyer_id),
            verified_purchase=True,
            created_at=r.created_at,
        )
        for r in rows
    ]
    return ReviewPage(sku=sku, average=average, count=count, items=items, next_cursor=nxt)
