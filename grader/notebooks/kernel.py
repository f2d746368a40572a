"""Public tests inside a student's notebook: `check(test_x, globals())` runs one test of the
exercise against what the notebook has defined so far, and says what went wrong.

This is a convenience for the learner, in the learner's own kernel: nothing here is trusted and
nothing here grades. The grade comes from `grader notebook grade` (or the web), which runs the
notebook's solution cells in the sandbox against the public and hidden tests.
"""

from __future__ import annotations

import itertools
import tempfile
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

_opened: list[IO[str]] = []  # files opened for a test's inputs, closed when it ends
PLAIN = (int, float, complex, str, bytes, bool, type(None), list, tuple, dict, set, frozenset)


class NotDefined(AttributeError):
    pass


def check(test: Callable[..., Any], namespace: Mapping[str, Any]) -> None:
    """Run `test` (with each of its parameter sets) on the names in `namespace`; print the
    outcome, and raise AssertionError when it failed (so nbgrader marks the cell failed too)."""
    submission = LocalModule(namespace)
    failures = []
    cases = list(_parameter_sets(test))
    for kwargs in cases:
        label = test.__name__ + (f"[{', '.join(f'{k}={v!r}' for k, v in kwargs.items())}]" if kwargs else "")
        try:
            test(submission, **kwargs)
        except NotDefined as exc:
            failures.append(f"{label}: {exc}")
        except AssertionError as exc:
            hint = getattr(exc, "hint", "")
            failures.append(f"{label}: {exc}" + (f"\n  hint: {hint}" if hint else ""))
        except Exception as exc:  # noqa: BLE001 - the learner's code raised: show where
            where = "".join(traceback.format_exception(exc)[-3:]).rstrip()
            failures.append(f"{label}: your code raised {type(exc).__name__}: {exc}\n{where}")
    for handle in _opened:
        handle.close()
    _opened.clear()
    if failures:
        print("\n\n".join(f"FAILED {f}" for f in failures))
        raise AssertionError(f"{len(failures)} of {len(cases)} case(s) of {test.__name__} failed")
    print(f"passed: {test.__name__}" + (f" ({len(cases)} cases)" if len(cases) > 1 else ""))


def _parameter_sets(test: Callable[..., Any]) -> Iterator[dict[str, Any]]:
    """The keyword arguments of each case of a `@pytest.mark.parametrize`d test."""
    axes = []
    for mark in getattr(test, "pytestmark", []):
        if mark.name != "parametrize":
            continue
        names, values = mark.args[0], mark.args[1]
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        rows = []
        for value in values:
            value = getattr(value, "values", value)  # pytest.param(...)
            rows.append(dict(zip(names, value if len(names) > 1 else (value,), strict=False)))
        axes.append(rows)
    for combination in itertools.product(*axes):
        yield {name: value for row in combination for name, value in row.items()}


class LocalObject:
    """An object of the learner's code, with the methods the exercise's tests use on the
    sandbox's proxies: `attr("a.b")`, `call("method", ...)`, and plain calls."""

    def __init__(self, value: Any) -> None:
        object.__setattr__(self, "_value", value)

    def attr(self, path: str) -> Any:
        value = self._value
        for part in path.split("."):
            value = getattr(value, part)
        return _wrap(value)

    def call(self, attr: str | None, *args: Any, **kwargs: Any) -> Any:
        target = self._value if attr is None else getattr(self._value, attr)
        return _wrap(target(*_prepare(args), **_prepare(kwargs)))

    def take(self, count: int) -> list[Any]:
        """The next `count` items of an iterator."""
        return [_wrap(v) for v in itertools.islice(self._value, count)]

    def value(self) -> Any:
        return self._value

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _wrap(self._value(*_prepare(args), **_prepare(kwargs)))

    def __getattr__(self, name: str) -> Any:
        return _wrap(getattr(self._value, name))

    def __iter__(self) -> Iterator[Any]:
        return (_wrap(v) for v in self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return f"<local {type(self._value).__name__}>"


class LocalModule:
    """The notebook's namespace, seen as the submission's module."""

    def __init__(self, namespace: Mapping[str, Any]) -> None:
        self._namespace = namespace

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name not in self._namespace:
            raise NotDefined(f"{name} is not defined yet: run the cell that defines it, then this one")
        return _wrap(self._namespace[name])


def _prepare(value: Any) -> Any:
    """Test inputs as the learner's code receives them in the sandbox: a `File` becomes the path
    of a file with its bytes, or that file opened as UTF-8 text."""
    from grader.remote import File

    if isinstance(value, File):
        folder = Path(tempfile.mkdtemp(prefix="grader-check-"))
        path = folder / (Path(value.name).name or "input")
        path.write_bytes(value.data)
        if not value.open:
            return str(path)
        handle = path.open(encoding="utf-8", newline="")
        _opened.append(handle)
        return handle
    if isinstance(value, list | tuple):
        return type(value)(_prepare(v) for v in value)
    if isinstance(value, dict):
        return {k: _prepare(v) for k, v in value.items()}
    return value


def _wrap(value: Any) -> Any:
    if callable(value):
        return LocalObject(value)
    if isinstance(value, PLAIN) or type(value).__module__.split(".")[0] in ("torch", "numpy"):
        return value
    return LocalObject(value)
