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
from typing import TypeVar
from urllib.parse import quote

from pydantic import BaseModel

from gateways.http import PartnerClient, PartnerError, error_message

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


class SupplierError(PartnerError):
    """A supplier call failed; ``refused``: the supplier will not sell (a business answer)."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        refused: bool = False,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable, status_code=status_code)
        self.refused = refused


class SupplierClient(PartnerClient):
    """Thin typed client; every call carries the bearer API key."""

    name = "supplier"
    error = SupplierError

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
