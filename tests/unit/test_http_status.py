"""Each reason a service refuses a request has its own HTTP status, mapped in one table."""

from __future__ import annotations

import pytest

from web.http import STATUS, status_of
from web.services import errors


def _reasons() -> list[type[errors.ServiceError]]:
    found, todo = [], [errors.ServiceError]
    while todo:
        for kind in todo.pop().__subclasses__():
            found.append(kind)
            todo.append(kind)
    return found


def test_every_reason_a_service_can_give_has_a_status_of_its_own() -> None:
    reasons = _reasons()
    assert len(reasons) >= 8 and all(kind in STATUS for kind in reasons)
    assert len(set(STATUS.values())) == len(STATUS)  # no two reasons read the same to a client


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.NotFound("submission 3"), 404),
        (errors.Locked("locked"), 403),
        (errors.TooManyWaiting("wait"), 429),
        (errors.Unavailable("down"), 503),
        (errors.ServiceError("a reason without its own status"), 400),
    ],
)
def test_status_of(error: errors.ServiceError, status: int) -> None:
    assert status_of(error) == status


def test_not_found_names_what_it_did_not_find() -> None:
    assert errors.NotFound("package 7").message == "package 7 not found"
