"""An admin ends every console session of a user at once (a lost laptop, a merchant who
left): their next console page asks them to sign in again. Bearer tokens are not sessions:
they end at their own `exp` (at most ORDERS_TOKEN_MAX_TTL_SECONDS ahead)."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel

from api.deps import Admin, DatabaseDep
from store import console_sessions

router = APIRouter(prefix="/admin", tags=["admin"])


class SessionsEnded(BaseModel):
    user_id: str
    ended: int  # how many of the user's sessions were open


@router.delete("/users/{user_id}/console-sessions", response_model=SessionsEnded)
async def end_console_sessions(
    user_id: Annotated[str, Path(min_length=1, max_length=128)], _: Admin, db: DatabaseDep
) -> SessionsEnded:
    async with db.transaction() as tx:
        ended = await console_sessions.end_all(tx, user_id, datetime.now(UTC))
    return SessionsEnded(user_id=user_id, ended=ended)
