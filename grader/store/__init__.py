"""The database: users, exercise versions, submissions and their attempts."""

from grader.store.db import (
    DatabaseError,
    default_url,
    make_engine,
    require_current,
    sessions,
    transaction,
    upgrade,
)
from grader.store.models import Attempt, Base, ExerciseVersion, Submission, SubmissionState, User

__all__ = [
    "Attempt",
    "Base",
    "DatabaseError",
    "ExerciseVersion",
    "Submission",
    "SubmissionState",
    "User",
    "default_url",
    "make_engine",
    "require_current",
    "sessions",
    "transaction",
    "upgrade",
]
