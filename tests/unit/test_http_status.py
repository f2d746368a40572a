"""Each reason a service refuses a request has its own HTTP status, mapped in one table."""

from __future__ import annotations

import pytest

from web.http import STATUS, headers_of, status_of
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
    # a reason is mapped itself, or refines one that is (the grader at capacity is unavailable,
    # with a Retry-After besides)
    refined = {kind for kind in reasons if kind not in STATUS}
    assert refined == {errors.AtCapacity} and errors.AtCapacity.__base__ is errors.Unavailable
    assert len(reasons) >= 9 and all(kind in STATUS for kind in set(reasons) - refined)
    assert len(set(STATUS.values())) == len(STATUS)  # no two reasons read the same to a client


def test_at_capacity_is_unavailable_and_says_when_to_come_back() -> None:
    full = errors.AtCapacity("the grader is at capacity", 120)
    assert status_of(full) == 503 and headers_of(full) == {"Retry-After": "120"}
    assert headers_of(errors.Unavailable("down")) is None


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
