"""Signed callback delivery with retries, as a partner gateway does it.

Each event is POSTed (signed) to its URL; 5xx, 429 and connection errors are retried with
exponential backoff, any other non-2xx answer makes the sender give up (logged). Every
event gets a :class:`DeliveryRecord` kept in memory for inspection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field

from sandboxes.signed import NonClosingTransport, post_signed

logger = logging.getLogger(__name__)

DeliveryStatus = Literal["recorded", "pending", "delivered", "gave_up", "failed"]


def utc_now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class DeliveryAttempt(BaseModel):
    at: str
    status_code: int | None = None
    error: str | None = None


class DeliveryRecord(BaseModel):
    event_id: str
    url: str
    payload: dict[str, Any]
    status: DeliveryStatus
    attempts: list[DeliveryAttempt] = Field(default_factory=list)


class Deliverer:
    """Sends events in order in a background task; ``enabled=False`` only records them."""

    def __init__(
        self,
        secret: str,
        *,
        enabled: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        base_delay: float = 0.2,
        max_attempts: int = 8,
        timeout: float = 5.0,
    ) -> None:
        self._secret = secret
        self._enabled = enabled
        self._transport = transport
        self._base_delay = base_delay
        self._max_attempts = max_attempts
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.records: list[DeliveryRecord] = []

    async def send(
        self, url: str, payloads: Sequence[Mapping[str, Any]], *, delay: float = 0.0
    ) -> DeliveryRecord:
        """Queue ``payloads`` (each with an ``event_id``) for ``url``, sent one after another.

        Returns the first event's record once its first attempt has finished.
        """
        records = [
            DeliveryRecord(
                event_id=str(p["event_id"]),
                url=url,
                payload=dict(p),
                status="pending" if self._enabled else "recorded",
            )
            for p in payloads
        ]
        self.records.extend(records)
        if not self._enabled:
            return records[0]
        first_attempt: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._run(records, delay, first_attempt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await asyncio.shield(first_attempt)
        return records[0]

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is being delivered; False if still busy after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._tasks:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.wait(set(self._tasks), timeout=remaining)
        return True

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(
        self, records: list[DeliveryRecord], delay: float, first_attempt: asyncio.Future[None]
    ) -> None:
        try:
            if delay > 0:
                await asyncio.sleep(delay)
            for record in records:
                await self._deliver(record, first_attempt)
        except Exception:
            logger.exception("callback delivery to %s crashed", records[0].url)
        finally:
            if not first_attempt.done():
                first_attempt.set_result(None)

    async def _deliver(self, record: DeliveryRecord, first_attempt: asyncio.Future[None]) -> None:
        for attempt_no in range(1, self._max_attempts + 1):
            attempt = await self._attempt(record)
            record.attempts.append(attempt)
            code = attempt.status_code
            if code is not None and 200 <= code < 300:
                record.status = "delivered"
            elif code is not None and code < 500 and code != 429:
                record.status = "gave_up"
                logger.warning(
                    "callback %s to %s refused with %s; giving up",
                    record.event_id,
                    record.url,
                    code,
                )
            elif attempt_no == self._max_attempts:
                record.status = "failed"
                logger.warning(
                    "callback %s to %s failed after %s attempts",
                    record.event_id,
                    record.url,
                    attempt_no,
                )
            if not first_attempt.done():
                first_attempt.set_result(None)
            if record.status != "pending":
                return
            await asyncio.sleep(self._base_delay * 2 ** (attempt_no - 1))

    async def _attempt(self, record: DeliveryRecord) -> DeliveryAttempt:
        at = utc_now_rfc3339()
        try:
            response = await post_signed(
                record.url, record.payload, self._secret, client=self._get_client()
            )
        except httpx.HTTPError as exc:
            logger.info("callback %s to %s: %r", record.event_id, record.url, exc)
            return DeliveryAttempt(at=at, error=repr(exc))
        logger.info("callback %s to %s: %s", record.event_id, record.url, response.status_code)
        return DeliveryAttempt(at=at, status_code=response.status_code)

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            transport = (
                NonClosingTransport(self._transport) if self._transport is not None else None
            )
            self._client = httpx.AsyncClient(transport=transport, timeout=self._timeout)
        return self._client
