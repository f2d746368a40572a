"""The reference solution as tests see it: called in the trusted process, on copies of the
arguments, with `File` arguments turned into real files like the runner does."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from grader.remote import File

_names = itertools.count()


class LocalModule:
    def __init__(self, module: ModuleType, scratch: Path) -> None:
        self._module = module
        self._scratch = scratch
        self._opened: list[IO[str]] = []

    def close(self) -> None:
        """Close the files opened for the reference (`File(..., open=True)`)."""
        for handle in self._opened:
            handle.close()
        self._opened.clear()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._module, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            return value(*self._prepare(args), **{k: self._prepare(v) for k, v in kwargs.items()})

        call.__name__ = name
        return call

    def _prepare(self, value: Any) -> Any:
        torch = _torch()
        if isinstance(value, File):
            path = self._scratch / f"{next(_names)}-{Path(value.name).name or 'input'}"
            path.write_bytes(value.data)
            if value.open:  # as the runner does: the file itself, open as UTF-8 text
                handle = path.open(encoding="utf-8", newline="")
                self._opened.append(handle)
                return handle
            return str(path)
        if torch is not None and isinstance(value, torch.Tensor):
            if value.requires_grad:
                # a leaf a gradient check reads back: pass it as is (in-place edits of such a leaf
                # fail in torch anyway, so the reference cannot change it)
                return value
            return value.clone()
        if torch is not None and isinstance(value, torch.nn.Module):
            return copy.deepcopy(value)  # the submission gets its own rebuilt copy too
        if isinstance(value, list):
            return [self._prepare(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self._prepare(v) for v in value)
        if isinstance(value, dict):
            return {k: self._prepare(v) for k, v in value.items()}
        return value


def _torch() -> Any:
    import sys

    return sys.modules.get("torch")
