"""Turning refusals into the typed ApplicationErrors that callers see."""

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from temporalio.exceptions import ActivityError, ApplicationError

from domain.errors import FAILURES, DomainError, ErrorCode

P = ParamSpec("P")
T = TypeVar("T")


def to_application_error(err: DomainError) -> ApplicationError:
    return ApplicationError(err.message, err.details, type=err.code.value, non_retryable=True)


def rule(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Call a domain rule; its refusal becomes an ApplicationError of the same code."""
    try:
        return fn(*args, **kwargs)
    except DomainError as err:
        raise to_application_error(err) from None


# a failed activity raises ActivityError(cause=...); a failed *local* activity raises its
# ApplicationError as is
ACTIVITY_FAILURES = (ActivityError, ApplicationError)


def unwrap(err: ActivityError | ApplicationError) -> ApplicationError:
    """The business error inside a failed activity, re-raisable from an update handler."""
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError) and cause.type:
        return ApplicationError(cause.message, *cause.details, type=cause.type, non_retryable=True)
    return ApplicationError(str(cause or err), type=ErrorCode.INTERNAL.value, non_retryable=True)


# what a business rule (or the caller's input) refuses: the caller's answer, not a failure
REFUSALS = frozenset(code.value for code in ErrorCode if code not in FAILURES)


def is_refusal(err: ApplicationError) -> bool:
    return err.type in REFUSALS
