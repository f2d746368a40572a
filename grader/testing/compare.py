"""Pure comparisons of a submission's output with the expected value.

`compare` returns None when the values agree, or a Mismatch. Its `kind` is a phrase of our own
fixed vocabulary ("has the wrong shape") and is all a hidden test shows: everything else (the
`summary` with counts, shapes and the first differing index, the `where` path into a container,
the `detail` with values) is computed from the submission's output on the test's inputs, and is
shown only where those inputs are public. Shape and dtype are checked strictly, and NaN is a
mismatch unless `equal_nan` is asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

# (rtol, atol) per dtype, as in torch.testing.assert_close
TOLERANCES: dict[str, tuple[float, float]] = {
    "float16": (1e-3, 1e-5),
    "bfloat16": (1.6e-2, 1e-5),
    "float32": (1.3e-6, 1e-5),
    "float64": (1e-7, 1e-7),
    "complex64": (1.3e-6, 1e-5),
    "complex128": (1e-7, 1e-7),
}
PYTHON_FLOAT = (1e-7, 1e-9)
SHOWN_ITEMS = 5
DIFFERS = "differs from the expected value"
WRONG_SHAPE = "has the wrong shape"


@dataclass(frozen=True)
class Mismatch:
    kind: str  # our own words, the same whatever the values: safe in a hidden test
    summary: str  # what differs, with counts, shapes and indices: public tests only
    detail: str = ""  # the values themselves: public tests only
    where: str = ""  # the path into a container ("[3]['merges']"): public tests only

    def located(self, where: str) -> Mismatch:
        return replace(self, where=f"{where}{self.where}")

    def describe(self, what: str = "the output", *, reveal: bool = False) -> str:
        """`what: kind` (safe anywhere), or with `reveal` everything that was found."""
        if not reveal:
            return f"{what}: {self.kind}"
        text = f"{what}{self.where}: {self.summary}"
        return text + (f" ({self.detail})" if self.detail else "")

    def explained(self) -> str:
        """Everything beyond `kind`, for a failure's public detail."""
        at = f"at {self.where}: " if self.where else ""
        return at + self.summary + (f"; {self.detail}" if self.detail else "")


def default_tolerance(dtype: str) -> tuple[float, float]:
    return TOLERANCES.get(dtype.removeprefix("torch."), (0.0, 0.0))


def compare(
    actual: Any,
    expected: Any,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    equal_nan: bool = False,
) -> Mismatch | None:
    """None when `actual` matches `expected`; otherwise what differs."""
    return _compare(actual, expected, rtol, atol, equal_nan)


def _compare(
    actual: Any, expected: Any, rtol: float | None, atol: float | None, equal_nan: bool
) -> Mismatch | None:
    torch = _torch()
    if torch is not None and isinstance(expected, torch.Tensor):
        return _tensor(actual, expected, rtol, atol, equal_nan, torch)
    if isinstance(expected, np.ndarray):
        return _array(actual, expected, rtol, atol, equal_nan)
    if expected is None:
        return (
            None
            if actual is None
            else Mismatch("should be None", f"expected None, got {describe_type(actual)}")
        )
    if isinstance(expected, bool):
        return _exact(actual, expected, bool)
    if isinstance(expected, int):
        return _exact(actual, expected, int)
    if isinstance(expected, float):
        return _float(actual, expected, rtol, atol, equal_nan)
    if isinstance(expected, str | bytes):
        return _exact(actual, expected, type(expected))
    if isinstance(expected, list | tuple):
        return _sequence(actual, expected, rtol, atol, equal_nan)
    if isinstance(expected, dict):
        return _mapping(actual, expected, rtol, atol, equal_nan)
    if isinstance(expected, set | frozenset):
        return _set(actual, expected)
    raise TypeError(f"compare() does not know how to compare {type(expected).__qualname__}")


def type_name(value: Any) -> str:
    """`a tensor`, `a list`, `None`: the kind of an expected value, without its shape or size."""
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor):
        return "a tensor"
    if isinstance(value, np.ndarray):
        return "an array"
    if value is None:
        return "None"
    name = getattr(type(value), "__name__", "object")
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def describe_type(value: Any) -> str:
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    if value is None:
        return "None"
    name = getattr(type(value), "__name__", "object")
    if name in ("RemoteObject", "RemoteModule", "BoundName"):
        return "an object that is not plain data (an instance of your own class?)"
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return f"{article} {name}"


def _exact(actual: Any, expected: Any, kind: type) -> Mismatch | None:
    if type(actual) is not kind:
        return _wrong_type(actual, expected)
    if actual == expected:
        return None
    return Mismatch(
        DIFFERS, "differs from the expected value", f"got {_short(actual)}, expected {_short(expected)}"
    )


def _wrong_type(actual: Any, expected: Any) -> Mismatch:
    return Mismatch(
        f"should be {type_name(expected)}", f"expected {describe_type(expected)}, got {describe_type(actual)}"
    )


def _float(
    actual: Any, expected: float, rtol: float | None, atol: float | None, equal_nan: bool
) -> Mismatch | None:
    if isinstance(actual, bool) or not isinstance(actual, int | float):
        return Mismatch("should be a float", f"expected a float, got {describe_type(actual)}")
    actual = float(actual)
    if math.isnan(actual) or math.isnan(expected):
        if equal_nan and math.isnan(actual) and math.isnan(expected):
            return None
        said = "is NaN" if math.isnan(actual) else "should be NaN"
        return Mismatch(said, said, f"got {actual!r}, expected {expected!r}")
    r, a = (rtol if rtol is not None else PYTHON_FLOAT[0]), (atol if atol is not None else PYTHON_FLOAT[1])
    if actual == expected or (math.isfinite(expected) and abs(actual - expected) <= a + r * abs(expected)):
        return None
    return Mismatch(
        f"{DIFFERS} beyond tolerance (allowed {a:.1e} + {r:.1e} x |expected|)",
        "differs from the expected value beyond tolerance",
        f"got {actual!r}, expected {expected!r}, a difference of {abs(actual - expected):.3g}",
    )


def _sequence(actual: Any, expected: list[Any] | tuple[Any, ...], *tol: Any) -> Mismatch | None:
    if type(actual) is not type(expected):
        return _wrong_type(actual, expected)
    if len(actual) != len(expected):
        return Mismatch("has the wrong number of items", f"has {len(actual)} items; expected {len(expected)}")
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        found = _compare(a, e, *tol)
        if found is not None:
            return found.located(f"[{i}]")
    return None


def _mapping(actual: Any, expected: dict[Any, Any], *tol: Any) -> Mismatch | None:
    if not isinstance(actual, dict):
        return _wrong_type(actual, expected)
    # keys match only with their types: True is not 1, 1.0 is not 1
    have, want = {_typed(k) for k in actual}, {_typed(k) for k in expected}
    missing = [k for k in expected if _typed(k) not in have]
    extra = [k for k in actual if _typed(k) not in want]
    if missing or extra:
        parts = [f"{len(missing)} key(s) missing"] if missing else []
        parts += [f"{len(extra)} unexpected key(s)"] if extra else []
        detail = []
        if missing:
            detail.append(f"missing {_few(missing)}")
        if extra:
            detail.append(f"unexpected {_few(extra)}")
        return Mismatch("has missing or unexpected keys", ", ".join(parts), "; ".join(detail))
    for key, value in expected.items():
        found = _compare(actual[key], value, *tol)
        if found is not None:
            return found.located(f"[{_short(key)}]")
    return None


def _set(actual: Any, expected: set[Any] | frozenset[Any]) -> Mismatch | None:
    if not isinstance(actual, set | frozenset):
        return _wrong_type(actual, expected)
    have, want = {_typed(k) for k in actual}, {_typed(k) for k in expected}
    if have == want:
        return None
    missing = [k for k in expected if _typed(k) not in have]
    extra = [k for k in actual if _typed(k) not in want]
    return Mismatch(
        "has missing or unexpected items",
        f"{len(missing)} item(s) missing, {len(extra)} unexpected",
        f"missing {_few(missing)}; unexpected {_few(extra)}",
    )


def _tensor(
    actual: Any, expected: Any, rtol: float | None, atol: float | None, equal_nan: bool, torch: Any
) -> Mismatch | None:
    if not isinstance(actual, torch.Tensor):
        return _wrong_type(actual, expected)
    if tuple(actual.shape) != tuple(expected.shape):
        return Mismatch(WRONG_SHAPE, f"has shape {tuple(actual.shape)}; expected {tuple(expected.shape)}")
    if actual.dtype != expected.dtype:
        got, want = str(actual.dtype).removeprefix("torch."), str(expected.dtype).removeprefix("torch.")
        return Mismatch(f"has the wrong dtype (expected {want})", f"has dtype {got}; expected {want}")
    a = actual.detach().cpu()
    e = expected.detach().cpu()
    if a.dtype == torch.bfloat16:
        a, e = a.float(), e.float()
    dtype = str(expected.dtype).removeprefix("torch.")
    return _values(a.numpy(), e.numpy(), dtype, rtol, atol, equal_nan)


def _array(
    actual: Any, expected: np.ndarray, rtol: float | None, atol: float | None, equal_nan: bool
) -> Mismatch | None:
    if not isinstance(actual, np.ndarray):
        return _wrong_type(actual, expected)
    if actual.shape != expected.shape:
        return Mismatch(WRONG_SHAPE, f"has shape {actual.shape}; expected {expected.shape}")
    if actual.dtype != expected.dtype:
        want = expected.dtype
        return Mismatch(
            f"has the wrong dtype (expected {want})", f"has dtype {actual.dtype}; expected {want}"
        )
    return _values(actual, expected, str(expected.dtype), rtol, atol, equal_nan)


def _values(
    a: np.ndarray, e: np.ndarray, dtype: str, rtol: float | None, atol: float | None, equal_nan: bool
) -> Mismatch | None:
    default_r, default_a = default_tolerance(dtype)
    r = default_r if rtol is None else rtol
    t = default_a if atol is None else atol
    if a.dtype.kind in "biu":
        bad = a != e
    else:
        a64, e64 = (
            a.astype(np.complex128 if a.dtype.kind == "c" else np.float64),
            e.astype(np.complex128 if e.dtype.kind == "c" else np.float64),
        )
        with np.errstate(invalid="ignore", over="ignore"):
            # an infinity is only close to the same infinity, never "within tolerance" of one
            close = (np.abs(a64 - e64) <= t + r * np.abs(e64)) & np.isfinite(e64)
            close |= a64 == e64
        nan_a, nan_e = np.isnan(a64), np.isnan(e64)
        if equal_nan:
            close |= nan_a & nan_e
        bad = ~close
        nan_bad = nan_a & ~(nan_e & equal_nan)
        if nan_bad.any():
            first = _index(np.argwhere(nan_bad)[0])
            count = int(nan_bad.sum())
            return Mismatch(
                "has NaN values where numbers were expected",
                f"has {count} NaN value(s) where numbers were expected (first at index {first})",
            )
    if not bad.any():
        return None
    count, first = int(bad.sum()), np.argwhere(bad)[0]
    index = _index(first)
    at = tuple(int(i) for i in first)
    if a.dtype.kind in "biu":
        return Mismatch(
            "has values that differ from the expected ones",
            f"{count} of {a.size} values differ (first at index {index})",
            f"got {a[at].item()!r}, expected {e[at].item()!r} there",
        )
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf where both sides agree on an infinity
        diff = np.abs(a.astype(np.float64) - e.astype(np.float64)) if a.dtype.kind != "c" else np.abs(a - e)
    finite = np.where(bad & np.isfinite(diff), diff, 0)  # an all-NaN expected value has no "worst" number
    worst = float(finite.max()) if finite.size else 0.0
    allowed = f"allowed {t:.1e} + {r:.1e} x |expected|"
    return Mismatch(
        f"has values that differ beyond tolerance ({allowed})",
        f"{count} of {a.size} values differ beyond tolerance (first at index {index}; {allowed})",
        f"got {a[at].item()!r}, expected {e[at].item()!r} at index {index}; largest difference {worst:.3g}",
    )


def _typed(key: Any) -> Any:
    """A key with its type, recursively through tuples, for comparisons where 1 == True won't do."""
    if isinstance(key, tuple):
        return (tuple, tuple(_typed(k) for k in key))
    return (type(key), key)


def _index(position: np.ndarray) -> str:
    return "(" + ", ".join(str(int(i)) for i in position) + ("," if len(position) == 1 else "") + ")"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _few(values: list[Any]) -> str:
    shown = ", ".join(_short(v, 40) for v in values[:SHOWN_ITEMS])
    return shown + (f" and {len(values) - SHOWN_ITEMS} more" if len(values) > SHOWN_ITEMS else "")


def _torch() -> Any:
    import sys

    return sys.modules.get("torch")
