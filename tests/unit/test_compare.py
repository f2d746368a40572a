"""Comparisons of outputs with expected values, as a table of cases."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from grader.testing import GradingFailure, assert_close, compare

T = torch.tensor


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        (T([1.0, 2.0]), T([1.0, 2.0 + 1e-7])),
        (T([[1, 2]]), T([[1, 2]])),
        (T([True, False]), T([True, False])),
        (T([1.0, float("inf")]), T([1.0, float("inf")])),
        (T([1.0], dtype=torch.float16), T([1.0005], dtype=torch.float16)),
        (T([1.0], dtype=torch.bfloat16), T([1.0], dtype=torch.bfloat16)),
        (torch.empty(0, 3), torch.empty(0, 3)),
        (np.array([1.0, 2.0]), np.array([1.0, 2.0])),
        (3, 3),
        (0.1 + 0.2, 0.3),
        (True, True),
        ("abc", "abc"),
        (b"ab", b"ab"),
        (None, None),
        ([1, (2.0, b"x")], [1, (2.0, b"x")]),
        ({1: b"a", 2: [T([1.0])]}, {1: b"a", 2: [T([1.0])]}),
        ({(b"a", b"b")}, {(b"a", b"b")}),
    ],
    ids=lambda v: type(v).__name__,
)
def test_matches(actual: Any, expected: Any) -> None:
    assert compare(actual, expected) is None


@pytest.mark.parametrize(
    ("actual", "expected", "summary", "detail"),
    [
        (
            T([1.0, 2.0]),
            T([1.0, 2.1]),
            "1 of 2 values differ beyond tolerance (first at index (1,)",
            "got 2.0",
        ),
        (T([[1.0, 2.0]]), T([1.0, 2.0]), "has shape (1, 2); expected (2,)", ""),
        (T([1.0]), T([1.0], dtype=torch.float64), "has dtype float32; expected float64", ""),
        (T([1, 2]), T([1, 3]), "1 of 2 values differ (first at index (1,))", "got 2, expected 3"),
        (T([float("nan"), 1.0]), T([0.0, 1.0]), "has 1 NaN value(s) where numbers were expected", ""),
        (T([float("nan")]), T([float("nan")]), "NaN", ""),
        (T([float("inf")]), T([float("-inf")]), "values differ", ""),
        ([1.0], T([1.0]), "expected a float32 tensor of shape (1,), got a list", ""),
        (np.array([1, 2]), np.array([1.0, 2.0]), "has dtype int64; expected float64", ""),
        (3, 4, "differs from the expected value", "got 3, expected 4"),
        (True, 1, "expected an int, got a bool", ""),
        (1.0, 1.1, "differs from the expected value beyond tolerance", "a difference of 0.1"),
        (5.0, float("inf"), "differs", "got 5.0"),
        (float("-inf"), float("inf"), "differs", ""),
        (float("nan"), 1.0, "is NaN", ""),
        ("abc", "abd", "differs", "got 'abc'"),
        ((1, 2), [1, 2], "expected a list, got a tuple", ""),
        ([1, 2, 3], [1, 2], "has 3 items; expected 2", ""),
        ([1, [2, 5]], [1, [2, 6]], "differs", ""),
        ({1: b"a"}, {1: b"a", 2: b"b"}, "1 key(s) missing", "missing 2"),
        ({1: b"a", 3: b"c"}, {1: b"a"}, "1 unexpected key(s)", "unexpected 3"),
        ({1: b"x"}, {1: b"y"}, "differs", "got b'x'"),
        ({1}, {2}, "1 item(s) missing, 1 unexpected", ""),
        (5, None, "expected None, got an int", ""),
    ],
)
def test_mismatches(actual: Any, expected: Any, summary: str, detail: str) -> None:
    found = compare(actual, expected)
    assert found is not None
    assert summary in found.summary
    assert detail in found.detail


def test_keys_match_only_with_their_types() -> None:
    assert compare({True: b"a"}, {1: b"a"}) is not None
    assert compare({1.0: 2}, {1: 2}) is not None
    assert compare({(1, True)}, {(1, 1)}) is not None
    assert compare({(1, 2): [1]}, {(1, 2): [1]}) is None


def test_nested_mismatches_say_where() -> None:
    found = compare({"a": [1, (2, 3)]}, {"a": [1, (2, 4)]})
    assert found is not None and found.where == "['a'][1][1]"
    assert found.describe("the vocab") == "the vocab: differs from the expected value"
    assert found.describe("the vocab", reveal=True) == (
        "the vocab['a'][1][1]: differs from the expected value (got 3, expected 4)"
    )


@pytest.mark.parametrize(
    ("one", "other", "expected"),
    [
        (T([[1.0, 2.0]]), T([1.0, 2.0, 3.0, 4.0]), T([1.0, 2.0])),  # shapes
        (T([9.0, 2.0]), T([1.0, 9.0]), T([1.0, 2.0])),  # where and how much
        (T([math.nan, 2.0]), T([math.nan, math.nan]), T([1.0, 2.0])),  # NaN count and place
        (T([1, 9]), T([9, 9]), T([1, 2])),  # integer mismatches
        ([1], [1, 2, 3], [1, 2]),  # lengths
        ([1, 5], [9, 2], [1, 2]),  # which item
        ({1: b"a"}, {1: b"a", 2: b"b", 3: b"c"}, {1: b"a", 2: b"b"}),  # which keys
        ({"a": 1, "b": 9}, {"a": 9, "b": 2}, {"a": 1, "b": 2}),  # which key's value
        ({1}, {7, 8}, {2}),  # set contents
        (T([1.0], dtype=torch.float64), T([1.0], dtype=torch.float16), T([1.0])),  # dtypes
        ([1.0], (1, 2), T([1.0])),  # the type returned
        (np.zeros((3, 1)), np.zeros(5), np.zeros(2)),  # array shapes
        (1.5, 3.0, 2.0),  # floats
        (float("nan"), float("inf"), 2.0),
    ],
)
def test_a_hidden_description_is_the_same_whatever_was_returned(one: Any, other: Any, expected: Any) -> None:
    """What a hidden test shows of a mismatch (`kind`, `describe()`) must carry nothing the
    submission chose: two different wrong outputs of the same sort read the same."""
    first, second = compare(one, expected), compare(other, expected)
    assert first is not None and second is not None
    if first.kind.split(" (")[0] == second.kind.split(" (")[0]:
        assert first.describe() == second.describe()
    assert first.summary != second.summary or first.detail != second.detail or first.where != second.where
    for found in (first, second):
        assert found.where not in found.describe() or not found.where


def test_summary_never_shows_values_or_differences() -> None:
    found = compare(T([123.456]), T([654.321]))
    assert found is not None and "123" not in found.summary and "654" not in found.summary
    assert "530" not in found.summary and "difference" not in found.summary
    assert "123" in found.detail and "largest difference 531" in found.detail


def test_equal_nan_is_opt_in() -> None:
    assert compare(T([math.nan]), T([math.nan]), equal_nan=True) is None


def test_explicit_tolerances() -> None:
    assert compare(T([1.0]), T([1.05]), atol=0.1, rtol=0) is None
    assert compare(T([1.0]), T([1.05]), atol=0.01, rtol=0) is not None


def test_assert_close_names_a_matching_misconception() -> None:
    x = T([1.0, 2.0, 3.0, 4.0])
    with pytest.raises(GradingFailure) as info:
        assert_close(x.std(unbiased=False), x.std(), misconceptions={"biased std?": x.std(unbiased=False)})
    assert info.value.hint == "biased std?"


def test_assert_close_keeps_its_own_hint_when_no_misconception_matches() -> None:
    with pytest.raises(GradingFailure) as info:
        assert_close(T([9.0]), T([1.0]), hint="check the scale", misconceptions={"other": T([2.0])})
    assert info.value.hint == "check the scale"
    assert info.value.message.startswith("the output: has values that differ beyond tolerance")
    assert info.value.detail.startswith("1 of 1 values differ")


def test_unknown_types_are_a_test_bug() -> None:
    with pytest.raises(TypeError):
        compare(object(), object())
