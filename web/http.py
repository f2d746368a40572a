"""The HTTP status of each reason a service refuses a request: the one place that knows both."""

from __future__ import annotations

from web.services.errors import (
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
