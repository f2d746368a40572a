"""Setups made from Setups (`Setup.on` and Setup arguments): what each side makes, in which order."""

from __future__ import annotations

from typing import Any, cast

from grader.measurement import protocol
from grader.remote import RunnerClient
from grader.testing import Call, Setup


class Handle:
    """A stand-in for a RemoteObject: which object the fake runner kept."""

    def __init__(self, ident: int) -> None:
        self.ident = ident

    def __repr__(self) -> str:
        return f"#{self.ident}"


class FakeClient:
    """Records every `keep` request with the handles it was given; answers a fresh handle."""

    def __init__(self) -> None:
        self.setups: dict[Any, Any] = {}
        self.kept: list[tuple[int, str, list[Any], dict[str, Any], int | None, Any]] = []

    def keep(
        self,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any],
        *,
        pick: int | None = None,
        target: Any = None,
    ) -> Handle:
        handle = Handle(len(self.kept) + 1)
        self.kept.append((handle.ident, name, args, kwargs, pick, target))
        return handle


def bound(client: FakeClient, call: Call) -> tuple[Any, str, list[Any], dict[str, Any]]:
    return protocol.bind(cast(RunnerClient, client), call)


def test_a_graph_is_made_once_per_node_after_what_it_is_made_from() -> None:
    x = Setup("Value", 0.5)
    y = Setup.on(x, "__mul__", x)  # x used twice
    z = Setup.on(y, "__add__", other=x)  # a Setup as a keyword argument
    w = Setup.on(z, "__mul__", y)
    client = FakeClient()
    target, name, args, kwargs = bound(client, Call.on(w, "backward"))
    assert name == "backward" and args == [] and kwargs == {}
    made = {kept[0]: (kept[1], kept[2], kept[3], kept[5]) for kept in client.kept}
    assert [entry[0] for entry in made.values()] == ["Value", "__mul__", "__add__", "__mul__"]
    hx, hy, hz, hw = (client.setups[s] for s in (x, y, z, w))
    assert made[hx.ident] == ("Value", [0.5], {}, None)
    assert made[hy.ident] == ("__mul__", [hx], {}, hx)
    assert made[hz.ident] == ("__add__", [], {"other": hx}, hy)
    assert made[hw.ident] == ("__mul__", [hy], {}, hz)
    assert target is hw
    # a later call that holds the same Setups reuses this side's objects
    again = bound(client, Call("total", y, Setup.on(x, "__neg__")))
    assert again[2][0] is hy and len(client.kept) == 5
    assert client.kept[-1][1:] == ("__neg__", [], {}, None, hx)


def test_a_chain_far_deeper_than_the_recursion_limit() -> None:
    root = node = Setup("Value", 1.0)
    for _ in range(5000):
        node = Setup.on(node, "tanh")
    client = FakeClient()
    target, *_ = bound(client, Call.on(node, "backward"))
    assert len(client.kept) == 5001 and target is client.setups[node]
    assert client.kept[0][1] == "Value" and client.setups[root].ident == 1
    # each link was made on the one before it
    assert all(kept[5] is not None and kept[5].ident == kept[0] - 1 for kept in client.kept[1:])
    assert repr(node) == "Setup.on(<Setup 'tanh'>, 'tanh')"


def test_pick_keeps_the_target() -> None:
    pair = Setup.on(Setup("Tokenizer", "vocab"), "split", 3).pick(1)
    client = FakeClient()
    bound(client, Call("use", pair))
    assert [(name, pick) for _, name, _, _, pick, _ in client.kept] == [("Tokenizer", None), ("split", 1)]
    assert client.kept[1][5] is client.setups[pair.target]
    assert repr(pair) == "Setup.on(<Setup 'Tokenizer'>, 'split')[1]"
