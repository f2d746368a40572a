"""Calls to make on both the submission and the reference, for performance measurements."""

from __future__ import annotations

from typing import Any


class Setup:
    """A value each side makes for itself, untimed, before a measured call.

    `Setup("Tokenizer", vocab, merges)` calls `Tokenizer(vocab, merges)` in the submission's
    runner and in the reference's, once per measurement; a call then uses each side's own result:
    as its target (`Call.on(tokenizer, "encode", text)`) or as an argument (a KV cache:
    `Setup("prefill", params, prompt).pick(1)` is item 1 of what prefill returns). The result
    stays in its runner: it never crosses the pipe, so its form is each side's business.

    Setups build on Setups: an argument (or keyword argument) that is a `Setup` is replaced by
    that side's own object, and `Setup.on(target, "method", *args)` calls a method of one
    (`x = Setup("Value", 0.5)`, `y = Setup.on(x, "__mul__", x)`): a graph of objects, each made
    once per side, in an order where everything comes after what it is made from."""

    __slots__ = ("args", "index", "kwargs", "name", "target")

    def __init__(self, name: str, /, *args: Any, **kwargs: Any) -> None:
        self.name = name
        self.args = list(args)
        self.kwargs = kwargs
        self.index: int | None = None
        self.target: Setup | None = None

    @classmethod
    def on(cls, target: Setup, method: str, /, *args: Any, **kwargs: Any) -> Setup:
        """`target.method(*args, **kwargs)`, called on each side's own `target`."""
        made = cls(method, *args, **kwargs)
        made.target = target
        return made

    def pick(self, index: int) -> Setup:
        """Item `index` of the returned tuple or list, instead of the whole result."""
        picked = Setup(self.name, *self.args, **self.kwargs)
        picked.target = self.target
        picked.index = index
        return picked

    def needs(self) -> list[Setup]:
        """The Setups this one is made from: its target, then those among its arguments."""
        found = [self.target] if self.target is not None else []
        return found + [v for v in [*self.args, *self.kwargs.values()] if isinstance(v, Setup)]

    def __repr__(self) -> str:
        pick = f"[{self.index}]" if self.index is not None else ""
        if self.target is not None:  # one level only: a graph of Setups may be thousands deep
            return f"Setup.on(<Setup {self.target.name!r}>, {self.name!r}){pick}"
        return f"Setup({self.name!r}){pick}"


class Call:
    """`Call("train_bpe", path, 500, special_tokens=[...])`: a function of the exercise's module
    and the arguments to give it. `Call.on(setup, "encode", text)` calls a method of an object
    each side made with a `Setup`. Arguments may hold `Setup` values too."""

    __slots__ = ("args", "kwargs", "name", "target")

    def __init__(self, name: str, /, *args: Any, **kwargs: Any) -> None:
        self.name = name
        self.args = list(args)
        self.kwargs = kwargs
        self.target: Setup | None = None

    @classmethod
    def on(cls, target: Setup, method: str, /, *args: Any, **kwargs: Any) -> Call:
        call = cls(method, *args, **kwargs)
        call.target = target
        return call

    def setups(self) -> list[Setup]:
        found = [self.target] if self.target is not None else []
        return found + [v for v in [*self.args, *self.kwargs.values()] if isinstance(v, Setup)]

    def __repr__(self) -> str:
        on = f"{self.target!r}." if self.target is not None else ""
        return f"Call({on}{self.name!r}, {len(self.args)} args, {sorted(self.kwargs)})"
