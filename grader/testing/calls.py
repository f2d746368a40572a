"""A call to make on both the submission and the reference, for performance measurements."""

from __future__ import annotations

from typing import Any


class Call:
    """`Call("train_bpe", path, 500, special_tokens=[...])`: a function of the exercise's module
    and the arguments to give it."""

    __slots__ = ("args", "kwargs", "name")

    def __init__(self, name: str, /, *args: Any, **kwargs: Any) -> None:
        self.name = name
        self.args = list(args)
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f"Call({self.name!r}, {len(self.args)} args, {sorted(self.kwargs)})"
