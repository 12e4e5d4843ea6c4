"""Async HTTP client for the KEPLER goods supplier (JD Kepler style).

Purchases are idempotent on our external reference (the package id), sent as
``Idempotency-Key``: placing the same reference again returns the same supplier order.
Errors are :class:`SupplierError`: ``retryable`` for connection errors, timeouts, 429 and
5xx (retry with the same reference); ``refused`` for a business refusal (409 on an order:
the supplier cannot supply), which retrying will not change. A refused *cancel* is not an
error: :meth:`SupplierClient.cancel` answers ``cancelled=False`` with the supplier's reason.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from gateways.http import PartnerClient, error_message

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


class SupplierItem(BaseModel):
    sku: str
    quantity: int


class SupplierOrder(BaseModel):
    supplier_order_id: str
    external_ref: str
    status: str
    items: list[SupplierItem]


class SupplierCancel(BaseModel):
    supplier_order_id: str
    cancelled: bool
    reason: str


class SupplierError(Exception):
    """A supplier call failed. ``status_code`` is None for connection-level failures."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        refused: bool = False,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.refused = refused
        self.status_code = status_code


class SupplierClient(PartnerClient):
    """Thin typed client; every call carries the bearer API key."""

    async def place_order(
        self, external_ref: str, items: list[SupplierItem], notify_url: str
    ) -> SupplierOrder:
        """Buy ``items``; placing the same ``external_ref`` again returns the same order."""
        body = {
            "external_ref": external_ref,
            "items": [item.model_dump() for item in items],
            "notify_url": notify_url,
        }
        path = "/v1/orders"
        response = await self._send("POST", path, body, {"Idempotency-Key": external_ref})
        if response.status_code == 409:
            message = error_message(response)
            logger.info("supplier refused order %s: %s", external_ref, message)
            raise SupplierError(message, retryable=False, refused=True, status_code=409)
        order = self._parse(SupplierOrder, self._json(response))
        if order.external_ref != external_ref:
            raise SupplierError(
                f"supplier answered order {order.supplier_order_id} for {order.external_ref!r}, "
                f"expected {external_ref!r}",
                retryable=False,
            )
        return order

    async def cancel(self, supplier_order_id: str, reason: str) -> SupplierCancel:
        """Ask the supplier to cancel; a refusal (409) is ``cancelled=False``, not an error."""
        path = f"/v1/orders/{quote(supplier_order_id, safe='')}/cancel"
        response = await self._send("POST", path, {"reason": reason})
        if response.status_code == 409:
            message = error_message(response)
            logger.info("supplier refused to cancel %s: %s", supplier_order_id, message)
            return SupplierCancel(
                supplier_order_id=supplier_order_id, cancelled=False, reason=message
            )
        result = self._parse(SupplierCancel, self._json(response))
        if result.supplier_order_id != supplier_order_id:
            raise SupplierError(
                f"supplier answered cancel of {result.supplier_order_id}, "
                f"expected {supplier_order_id}",
                retryable=False,
            )
        return result

    async def get_order(self, supplier_order_id: str) -> SupplierOrder:
        response = await self._send("GET", f"/v1/orders/{quote(supplier_order_id, safe='')}")
        return self._parse(SupplierOrder, self._json(response))

    async def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send; raise a retryable :class:`SupplierError` for transport errors, 429 and 5xx."""
        try:
            response = await self._http.request(method, path, json=body, headers=headers)
        except httpx.TransportError as exc:
            logger.warning("supplier unreachable: %s %s: %r", method, path, exc)
            raise SupplierError(f"supplier unreachable: {exc!r}", retryable=True) from exc
        status = response.status_code
        if status >= 500 or status == 429:
            message = error_message(response)
            logger.warning("supplier %s %s answered %s: %s", method, path, status, message)
            raise SupplierError(
                f"supplier error {status}: {message}", retryable=True, status_code=status
            )
        return response

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        """The body of a 2xx answer; other answers raise a non-retryable error."""
        status = response.status_code
        if status >= 400:
            raise SupplierError(error_message(response), retryable=False, status_code=status)
        try:
            return response.json()
        except ValueError as exc:
            raise SupplierError(
                f"supplier answered {status} with invalid JSON",
                retryable=False,
                status_code=status,
            ) from exc

    @staticmethod
    def _parse(model: type[M], data: Any) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise SupplierError(f"unexpected supplier response: {exc}", retryable=False) from exc
