"""Why a service refuses a request, named by meaning. The app (`web.http.status_of`) maps each
to its HTTP status; the message is for the person who asked, and says what to do."""

from __future__ import annotations


class ServiceError(Exception):
    """A request refused for a reason the user can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ServiceError):
    """It does not exist, or it is not the asker's to see (which must read the same)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} not found")


class Unauthenticated(ServiceError):
    """The credentials are wrong."""


class Locked(ServiceError):
    """The learner has not unlocked it yet."""


class Invalid(ServiceError):
    """What was sent cannot be used as it is."""


class TooLarge(ServiceError):
    """What was sent is over a size limit."""


class Conflict(ServiceError):
    """It clashes with what is there already (a version uploaded twice, a state that forbids it)."""


class TooManyWaiting(ServiceError):
    """The asker has as many submissions waiting as one may have."""


class Unavailable(ServiceError):
    """A service it needs (the queue) is down; trying again later may work."""


class AtCapacity(Unavailable):
    """The grader holds as many queued submissions as it takes; `retry_after_s` estimates when one
    may be taken again (sent as Retry-After)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
