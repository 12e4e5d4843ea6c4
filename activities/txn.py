"""One transaction for an activity, its errors classified by type for Temporal's retries."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.exceptions import ApplicationError

from domain.errors import DomainError, ErrorCode
from store.db import Database
from workflows.errors import to_application_error


@asynccontextmanager
async def txn(db: Database, *, write: bool = True) -> AsyncIterator[AsyncSession]:
    """One transaction (a read one with `write=False`). A business refusal, and a value or
    constraint the database refuses, can never succeed: non-retryable. Anything else (the
    database unreachable, a timeout) is raised as it is and retried within the call's bounds."""
    try:
        async with db.transaction() if write else db.sessions() as session:
            yield session
    except DomainError as err:
        raise to_application_error(err) from None
    except (DataError, IntegrityError) as err:  # no retry will make the database take it
        raise ApplicationError(
            f"the database refused the write: {type(err.orig).__name__}: {err.orig}",
            type=ErrorCode.ORDER_ERROR.value,
            non_retryable=True,
        ) from None
