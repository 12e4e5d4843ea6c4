"""Callback event ids already accepted, so a replay is refused."""

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from store.sql import insert_ignore
from store.tables import WebhookEventRow


async def first_time(session: AsyncSession, source: str, event_id: str, now: datetime) -> bool:
    return await insert_ignore(
        session, WebhookEventRow, source=source, event_id=event_id, received_at=now
    )
