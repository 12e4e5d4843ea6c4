"""Evidence images that no party can need any more are deleted: those of a case withdrawn or
closed without a refund, `ORDERS_ENDED_CASE_IMAGES_DAYS` after it ended, and those of a case
that never opened, an hour after their upload. Each API process runs the purge every
`ORDERS_IMAGE_PURGE_EVERY_SECONDS` (twice at once is harmless: a purge marks, then deletes
what no case still holds)."""

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from runtime.settings import Settings
from store import case_images
from store.blobs import BlobStore
from store.db import Database

log = logging.getLogger(__name__)
UNOPENED_AFTER = timedelta(hours=1)  # a case's request takes seconds; its upload this long


async def purge_images(
    db: Database, blobs: BlobStore, settings: Settings, now: datetime | None = None
) -> int:
    """One round: the number of image files deleted."""
    now = now or datetime.now(UTC)
    async with db.transaction() as tx:
        freed = await case_images.purge_due(
            tx, now, timedelta(days=settings.ended_case_images_days), UNOPENED_AFTER
        )
    # a blob written again since (a new case with the same bytes) is younger: it stays
    older_than = (now - UNOPENED_AFTER).timestamp()
    return sum([await blobs.delete(sha256, older_than) for sha256 in freed])


async def purge_forever(db: Database, blobs: BlobStore, settings: Settings) -> None:
    while True:
        await asyncio.sleep(settings.image_purge_every_seconds)
        try:
            deleted = await purge_images(db, blobs, settings)
        except Exception:  # the next round tries again; nothing is lost by waiting
            log.exception("the evidence image purge failed")
            continue
        if deleted:
            log.info("deleted %d evidence images no case needs any more", deleted)
