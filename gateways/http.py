"""What the production partner clients share: one HTTP client with bounded retries, and
how a partner's error reads."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

logger = logging.getLogger(__name__)


def error_message(response: httpx.Response) -> str:
    """A partner's error answer as one readable line."""
    try:
        data: Any = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(data, dict):
        for key in ("detail", "message", "error"):
            if key in data:
                value = data[key]
                return value if isinstance(value, str) else json.dumps(value)
    return json.dumps(data)[:500]


class PartnerError(Exception):
    """A partner call failed. ``status_code`` is None for connection-level failures."""

    def __init__(self, message: str, *, retryable: bool, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status_code = status_code


M = TypeVar("M", bound=BaseModel)


class PartnerClient:
    """An HTTP client for one partner API: base URL, bearer API key, closed with us.

    Transport errors, 429 and 5xx raise a retryable ``error``; other 4xx a final one.
    """

    name = "partner"
    error: type[PartnerError] = PartnerError
    refused: type[PartnerError] | None = None  # raised for a 4xx answer, when a client names it

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            transport=transport,
            timeout=timeout,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
    ) -> httpx.Response:
        try:
            response = await self._http.request(
                method, path, json=body, headers=headers, params=params
            )
        except httpx.TransportError as exc:
            logger.warning("%s unreachable: %s %s: %r", self.name, method, path, exc)
            raise self.error(f"{self.name} unreachable: {exc!r}", retryable=True) from exc
        status = response.status_code
        if status >= 500 or status == 429:
            message = error_message(response)
            logger.warning("%s %s %s answered %s: %s", self.name, method, path, status, message)
            raise self.error(
                f"{self.name} error {status}: {message}", retryable=True, status_code=status
            )
        return response

    def _json(self, response: httpx.Response) -> Any:
        """The body of a 2xx answer; other answers raise a final error."""
        status = response.status_code
        if status >= 400:
            refused = self.refused or self.error
            raise refused(error_message(response), retryable=False, status_code=status)
        try:
            return response.json()
        except ValueError as exc:
            raise self.error(
                f"{self.name} answered {status} with invalid JSON",
                retryable=False,
                status_code=status,
            ) from exc

    def _parse(self, model: type[M], data: Any) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise self.error(f"unexpected {self.name} response: {exc}", retryable=False) from exc
