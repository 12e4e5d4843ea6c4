"""The one place that maps errors to HTTP: RFC 9457 problem JSON with a `code`."""

import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from temporalio.client import RPCTimeoutOrCancelledError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.service import RPCError, RPCStatusCode

from domain.errors import DomainError, ErrorCode
from store.db import CONNECTION_ERRORS, unreachable

log = logging.getLogger(__name__)

STATUS: dict[str, int] = {
    ErrorCode.INVALID_TRANSITION: 409,
    ErrorCode.OUT_OF_STOCK: 409,
    ErrorCode.LIMIT_EXCEEDED: 409,
    ErrorCode.SKU_DELISTED: 409,
    ErrorCode.INSUFFICIENT_FUNDS: 409,
    ErrorCode.IDEMPOTENCY_CONFLICT: 409,
    ErrorCode.SUPPLIER_REFUSED_CANCEL: 409,
    ErrorCode.SUPPLIER_ERROR: 502,
    ErrorCode.VERSION_CONFLICT: 409,
    ErrorCode.NOTHING_AVAILABLE: 409,
    ErrorCode.TXN_REUSED: 409,
    ErrorCode.EVENT_ID_REUSED: 409,
    ErrorCode.REFUND_FAILED: 502,
    ErrorCode.TOO_MANY_UNPAID_ORDERS: 429,
    ErrorCode.IMAGE_QUOTA_EXCEEDED: 429,
    ErrorCode.ORDER_ERROR: 500,  # recorded for operators; trying again will not help
    ErrorCode.UNSUPPORTED_MEDIA: 415,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.VALIDATION: 422,
    ErrorCode.UNKNOWN_SKU: 422,
    ErrorCode.SHOP_EXISTS: 409,
    ErrorCode.MULTIPLE_SHOPS: 422,
    ErrorCode.PAYMENT_GATEWAY_ERROR: 502,
}
TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Invalid request",
    502: "Bad gateway",
    503: "Unavailable",
}


UNREACHABLE = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED}
)
RETRY_AFTER_SECONDS = 5
LAZY_CONNECT_FAILED = "Failed client connect"  # how the SDK says a lazy client can't connect


class Problem(Exception):
    """Raise from a route to answer with problem JSON."""

    def __init__(self, code: str, detail: str, status: int | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.code, self.detail, self.extra = code, detail, extra
        self.status = status or STATUS.get(code, 500)


def problem_response(
    code: str, detail: str, status: int, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {
        "type": f"/problems/{code.lower().replace('_', '-')}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status == 503:  # a dependency is away: clients and partners retry
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )


def unavailable() -> Problem:
    """Temporal cannot be reached (or answered too late): retry shortly."""
    return Problem(
        ErrorCode.TEMPORAL_UNAVAILABLE,
        "the order service is briefly unavailable; retry shortly",
        503,
    )


def database_unavailable() -> Problem:
    """The database cannot be reached: retry shortly."""
    return Problem(
        "DATABASE_UNAVAILABLE", "the order database is briefly unavailable; retry shortly", 503
    )


def answer(p: Problem) -> JSONResponse:
    return problem_response(p.code, p.detail, p.status, **p.extra)


def temporal_unavailable() -> JSONResponse:
    return answer(unavailable())


def internal(exc: Exception, what: str = "unexpected error") -> JSONResponse:
    """A 500 for an error nobody expected, logged with its traceback."""
    log.exception(what, exc_info=exc)
    return problem_response(ErrorCode.INTERNAL, "unexpected error; it has been logged", 500)


def first_error(errors: list[Any]) -> str:
    """A validation failure in one line, `where: what`, as every 422 says it."""
    first = errors[0] if errors else {"loc": [], "msg": "invalid"}
    return f"{'.'.join(str(p) for p in first.get('loc', ()))}: {first.get('msg', '')}"


def from_failure(err: BaseException) -> Problem:
    """A workflow's refusal (update validator or handler) as a Problem."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ApplicationError) and cause.type:
            extra = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
            return Problem(cause.type, cause.message, **extra)
        cause = cause.__cause__ if not isinstance(cause, FailureError) else cause.cause
    log.error("unmapped workflow failure: %r", err)
    return Problem(ErrorCode.INTERNAL, "the order could not process the request", 500)


def as_problem(exc: Exception) -> Problem | None:
    """What the API would answer for `exc` (a refusal the caller can read), or None for an
    unexpected error."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, DomainError):
        return Problem(exc.code.value, exc.message, STATUS.get(exc.code, 409), **exc.details)
    if isinstance(exc, WorkflowUpdateFailedError):
        return from_failure(exc)
    if (
        isinstance(exc, RPCTimeoutOrCancelledError)  # an update past the deadline
        or (isinstance(exc, RPCError) and exc.status in UNREACHABLE)
        or (isinstance(exc, RuntimeError) and str(exc).startswith(LAZY_CONNECT_FAILED))
    ):
        return unavailable()
    if unreachable(exc):
        return database_unavailable()
    if isinstance(exc, ValidationError):
        return Problem(ErrorCode.VALIDATION, first_error(list(exc.errors())))
    return None


METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """The methods some route takes at this path (a path's methods may live in two routes,
    which a router's own 405 does not add up)."""
    return [
        method
        for method in METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    ]


ProblemPage = Callable[[Request, JSONResponse], Response]


def _shown(request: Request, response: JSONResponse) -> Response:
    """A refusal under /console is a page in the console's layout (`app.state.problem_page`),
    not problem JSON; everywhere else it is the problem JSON itself."""
    view: ProblemPage | None = getattr(request.app.state, "problem_page", None)
    path = request.url.path
    console = path == "/console" or path.startswith("/console/")
    if view is None or not console or path.startswith("/console/static/"):
        return response
    return view(request, response)


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return _shown(request, answer(exc))

    @app.exception_handler(DomainError)
    @app.exception_handler(WorkflowUpdateFailedError)
    @app.exception_handler(RPCTimeoutOrCancelledError)
    async def _refused(request: Request, exc: Exception) -> Response:
        p = as_problem(exc)
        assert p is not None
        return _shown(request, answer(p))

    async def _database(request: Request, exc: Exception) -> Response:
        """The database unreachable (by the error's type): a retryable 503; any other
        database error is a 500, logged."""
        if unreachable(exc):
            log.warning("database unreachable: %s", type(exc).__name__)
            return _shown(request, answer(database_unavailable()))
        return _shown(request, internal(exc, "unexpected database error"))

    for kind in CONNECTION_ERRORS:
        app.add_exception_handler(kind, _database)

    @app.exception_handler(RPCError)
    async def _temporal(request: Request, exc: RPCError) -> Response:
        """Temporal cannot be reached (or answered too late): a retryable 503, never a 500;
        reads from the database do not depend on it."""
        if exc.status not in UNREACHABLE:
            return _shown(request, internal(exc, "Temporal refused a call"))
        return _shown(request, temporal_unavailable())

    @app.exception_handler(RuntimeError)
    async def _runtime(request: Request, exc: RuntimeError) -> Response:
        away = as_problem(exc)  # a lazy Temporal client's first connection failed: 503
        return _shown(request, answer(away) if away is not None else internal(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type")}
            for e in exc.errors()
        ]
        return _shown(
            request,
            problem_response(ErrorCode.VALIDATION.value, first_error(errors), 422, errors=errors),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        return _shown(request, internal(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {
            400: ErrorCode.MALFORMED_BODY,  # a body not to be decoded (not JSON, too deep)
            404: ErrorCode.NOT_FOUND,
            405: ErrorCode.METHOD_NOT_ALLOWED,
            413: ErrorCode.PAYLOAD_TOO_LARGE,
        }.get(exc.status_code, ErrorCode.HTTP_ERROR)
        headers = exc.headers
        if exc.status_code == 405:  # every method the path takes, over all its routes
            headers = {"Allow": ", ".join(allowed_methods(request))}
        return _shown(request, problem_response(code, str(exc.detail), exc.status_code, headers))
