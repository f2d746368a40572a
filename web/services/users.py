from __future__ import annotations

from sqlalchemy import update

from grader.store import User, transaction
from web.services.base import Web
from web.services.errors import NotFound


def set_plan(web: Web, user_id: int, plan: str) -> None:
    """Put a learner on the free or the pro plan."""
    with transaction(web.factory) as session:
        result = session.execute(update(User).where(User.id == user_id).values(plan=plan))
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"user {user_id}")
