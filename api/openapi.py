"""The OpenAPI document tells the truth about errors: every operation lists the RFC 9457
problem answers it can give, as `application/problem+json`; and list routes refuse query
parameters they do not know (a typo is a 422, not a silently ignored filter)."""

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from api.deps import OPTIONAL_BEARER
from api.errors import TITLES, Problem
from domain.errors import ErrorCode

F = TypeVar("F", bound=Callable[..., Any])

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details, with a machine-readable `code`",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
    },
    "additionalProperties": True,
}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


# statuses a few operations answer beside the common ones, by (method, path)
SPECIAL: dict[tuple[str, str], list[int]] = {
    ("post", "/orders"): [429],  # TOO_MANY_UNPAID_ORDERS
    ("post", "/orders/{order_id}/reorder"): [429],
    ("post", "/orders/{order_id}/after-sales"): [415, 429],  # no image; IMAGE_QUOTA_EXCEEDED
    ("post", "/orders/{order_id}/payment-intents"): [502],  # the gateway failed
    ("post", "/checkouts"): [429],  # TOO_MANY_UNPAID_ORDERS
    ("post", "/checkouts/{checkout_id}/payment-intents"): [502],
    ("post", "/admin/refunds/{refund_id}/retry"): [502],  # refused again: REFUND_FAILED
    ("post", "/packages/ship-batch"): [415],  # a body that is not text/csv
    ("get", "/freight-rule"): [404],  # ?shop_id= names no shop
    ("put", "/freight-rule"): [404],
}
# partner callbacks authenticate by an HMAC of the body, not a bearer token
SIGNATURE_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": "X-Signature",
    "description": "t=<unix time>,v1=<hex HMAC-SHA256 of '<t>.<body>' under the partner's secret>",
}


def _statuses(path: str, method: str, op: dict[str, Any]) -> list[int]:
    out = [422, 503]
    if op.get("security"):
        out += [401, 403]
    if "{" in path or path.startswith("/webhooks/"):
        out.append(404)  # an unknown id, or a callback about an unknown order or package
    if method in ("post", "put"):
        out += [409, 413]
    if "requestBody" in op:  # (a callback's unreadable body is a 422, as any bad callback)
        out.append(400)  # MALFORMED_BODY: not JSON, or nested too deep
    return sorted(set(out + SPECIAL.get((method, path), [])))


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = PROBLEM_SCHEMA
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)  # our 422 is a problem, not FastAPI's default shape
        schemes = schema["components"].setdefault("securitySchemes", {})
        schemes["PartnerSignature"] = SIGNATURE_SCHEME
        schemes.pop(OPTIONAL_BEARER, None)
        for path, operations in schema.get("paths", {}).items():
            for method, op in operations.items():
                if path.startswith("/webhooks/"):
                    op["security"] = [{"PartnerSignature": []}]
                if {OPTIONAL_BEARER: []} in op.get("security", []):  # anyone may call
                    op["security"] = [{}, {"HTTPBearer": []}]  # (a token shows staff more)
                if path.endswith("/images/{sha256}"):
                    op["responses"]["200"] = {
                        "description": "the image, as it was uploaded",
                        "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
                    }
                responses = op.setdefault("responses", {})
                for status in _statuses(path, method, op):
                    responses[str(status)] = {
                        "description": TITLES.get(status, "Error"),
                        "content": {"application/problem+json": {"schema": PROBLEM_REF}},
                    }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _query_params(dependant: Dependant) -> list[Any]:
    out = list(dependant.query_params)
    for sub in dependant.dependencies:
        out += _query_params(sub)
    return out


def reads_query(*names: str) -> Callable[[F], F]:
    """For a route that reads these query parameters itself (a console page that shows a
    refused filter as HTML, not as FastAPI's 422): they are known too."""

    def mark(endpoint: F) -> F:
        endpoint.__dict__["reads_query"] = frozenset(names)
        return endpoint

    return mark


async def known_query_only(request: Request) -> None:
    """A query parameter the route does not declare is refused, not ignored."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    known = {p.alias for p in _query_params(route.dependant)}
    known |= getattr(route.endpoint, "reads_query", frozenset())
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise Problem(
            ErrorCode.VALIDATION,
            f"unknown query parameter: {', '.join(unknown)}",
            unknown=unknown,
            allowed=sorted(known),
        )
