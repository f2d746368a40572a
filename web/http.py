"""The HTTP status of each reason a service refuses a request: the one place that knows both."""

from __future__ import annotations

from web.services.errors import (
    AtCapacity,
    Conflict,
    Invalid,
    Locked,
    NotFound,
    ServiceError,
    TooLarge,
    TooManyWaiting,
    Unauthenticated,
    Unavailable,
)

STATUS: dict[type[ServiceError], int] = {
    Unauthenticated: 401,
    Locked: 403,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    Invalid: 422,
    TooManyWaiting: 429,
    Unavailable: 503,
}


def status_of(exc: ServiceError) -> int:
    """The status of `exc`'s nearest class that has one (400 for a reason without its own)."""
    for kind in type(exc).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 400


def headers_of(exc: ServiceError) -> dict[str, str] | None:
    """The headers a refusal carries besides its status (Retry-After when the grader is full)."""
    if isinstance(exc, AtCapacity):
        return {"Retry-After": str(exc.retry_after_s)}
    return None
