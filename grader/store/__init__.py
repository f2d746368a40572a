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
from grader.store.lti import LtiContext, LtiPlatform, LtiResourceLink, LtiScorePush, LtiUser, PushState
from grader.store.models import (
    ApiToken,
    Attempt,
    Base,
    ExercisePackage,
    ExerciseVersion,
    PackageArchive,
    PackageState,
    Role,
    Submission,
    SubmissionState,
    User,
)

__all__ = [
    "ApiToken",
    "Attempt",
    "Base",
    "DatabaseError",
    "ExercisePackage",
    "ExerciseVersion",
    "LtiContext",
    "LtiPlatform",
    "LtiResourceLink",
    "LtiScorePush",
    "LtiUser",
    "PackageArchive",
    "PackageState",
    "PushState",
    "Role",
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
