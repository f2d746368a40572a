"""The runner protocol against real runners, in both local backends."""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch

from grader.remote import (
    WALL_FACTOR,
    WALL_SLACK_SECONDS,
    File,
    MissingName,
    RemoteModule,
    RemoteObject,
    RunnerDied,
)
from grader.verdict import Status
from sandbox import Limits, Sandbox
from tests.conftest import StartModule, client_of

pytestmark = pytest.mark.sandbox

SOURCE = """
import os, sys, time, torch

print("hello at import")
sys.stdout.write("GRF1\\x00\\x00\\x00\\x10 not a frame\\n")


def double(x, offset=0):
    return x * 2 + offset


def fail(n):
    raise KeyError(f"missing {n}")


class Counter:
    def __init__(self, start):
        self.value = start
        self.weights = torch.zeros(2)

    def bump(self, by=1):
        self.value += by
        return self.value

    def items(self):
        return iter(range(3))


def read(path):
    with open(path) as f:
        return f.read()


def tell_parent():
    return os.getppid()


def spin():
    while True:
        pass


def sleep():
    time.sleep(1e9)


def ask():
    return input()


def trickle():
    while True:  # a byte now and then: the output never stops, the clocks are read all the same
        print(".", end="", flush=True)
        time.sleep(0.002)


def busy_trickle():
    n = 0
    while True:
        n += 1
        if n % 20000 == 0:
            print(".", end="", flush=True)


def hog():
    chunks = []
    while True:
        chunks.append(b"x" * (64 << 20))


def shout():
    while True:
        print("y" * 10000)


def leave():
    sys.exit(3)


def vanish():
    os._exit(0)


def weird():
    return object()


def sparse():
    return torch.eye(3).to_sparse()


def weighted(x, w, *, scale=1.0):
    return (x * w * scale).pow(2).sum(-1)


class Affine(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.arange(float(n)))
        self.bias = torch.nn.Parameter(torch.zeros(n), requires_grad=False)

    def forward(self, x):
        return x * self.weight + self.bias


def backward(x):
    return -x


call = attr = "module-level names that shadow the proxy's own methods"


def pair():
    return torch.ones(2), Counter(3)


def total(counter, extra):
    return counter.value + extra


def dict_loss(params):
    return (params["a"] * params["b"]).sum()


class Node:
    made = 0

    def __init__(self, value):
        Node.made += 1
        self.value = value

    def join(self, other, scale=1):
        return Node(self.value + scale * other.value)

    def get(self):
        return self.value


def count_lines(lines):
    return sum(1 for _ in lines)


def numbers(n):
    yield from range(n)


def noisy():
    import warnings

    class Custom(UserWarning):
        pass

    warnings.warn("careful", Custom)
    warnings.warn("again", DeprecationWarning)
    return 1
"""


@pytest.fixture
def module(any_backend: Sandbox, start_module: StartModule) -> RemoteModule:
    limits = Limits(call_seconds=3, cpu_seconds=60, wall_seconds=60, memory_mb=512, output_kb=64)
    return start_module(any_backend, SOURCE, limits=limits, preload=("torch",))


def test_calls_and_values(module: RemoteModule) -> None:
    x = torch.arange(4.0)
    assert torch.equal(module.double(x, offset=1), x * 2 + 1)
    assert module.double("ab", offset="!") == "abab!"


def test_prints_never_disturb_the_protocol(module: RemoteModule) -> None:
    assert module.double(3) == 6
    client = client_of(module)
    client.drain_output()
    assert "hello at import" in client.output.text()
    assert "GRF1" in client.output.text()


def test_remote_objects(module: RemoteModule) -> None:
    counter = module.Counter(5)
    assert isinstance(counter, RemoteObject)
    assert counter.bump(by=2) == 7 and counter.value == 7
    assert counter.attr("weights.shape") == (2,)
    counter.value = 10
    assert counter.bump() == 11
    assert list(counter.items()) == [0, 1, 2]
    assert counter != module.Counter(5) and counter == counter


def test_exceptions_keep_their_type_and_place(module: RemoteModule) -> None:
    with pytest.raises(KeyError) as info:
        module.fail(4)
    assert info.value.frames[-1][1] == "fail"  # type: ignore[attr-defined]
    with pytest.raises(MissingName, match="mod.py does not define nothing_here"):
        module.nothing_here()


def test_files(module: RemoteModule) -> None:
    assert module.read(File("naïve text".encode(), "../../etc/passwd")) == "naïve text"


def test_unsendable_results_become_handles_or_errors(module: RemoteModule) -> None:
    assert isinstance(module.weird(), RemoteObject)
    with pytest.raises(Exception, match="cannot be sent back"):
        module.sparse()


@pytest.mark.parametrize(
    ("name", "status", "words"),
    [
        ("spin", Status.TIMEOUT, "more than 3 s of CPU time"),
        ("sleep", Status.TIMEOUT, "no answer within 3 s"),
        ("ask", Status.TIMEOUT, "no answer within 3 s"),
        ("trickle", Status.TIMEOUT, "no answer within 3 s"),
        ("busy_trickle", Status.TIMEOUT, "more than 3 s of CPU time"),
        ("hog", Status.MEMORY_LIMIT, "memory"),
        ("shout", Status.OUTPUT_LIMIT, "printed more than 64 KB"),
        ("leave", Status.RUNTIME_ERROR, "sys.exit(3)"),
        ("vanish", Status.RUNTIME_ERROR, "exited"),
    ],
)
def test_runner_deaths_are_classified_from_outside(
    module: RemoteModule, name: str, status: Status, words: str
) -> None:
    started = time.monotonic()
    with pytest.raises(RunnerDied) as info:
        getattr(module, name)()
    assert info.value.death.status is status, info.value.death
    assert words in info.value.death.full or words in info.value.death.message
    if name == "leave":
        assert "3" not in info.value.death.message  # an exit code is the submission's to choose
    # the wall-clock backstop of a 3 s call: a busy host may stretch CPU limits up to it, no further
    assert time.monotonic() - started < 3 * WALL_FACTOR + WALL_SLACK_SECONDS
    with pytest.raises(RunnerDied):
        module.double(1)  # a dead runner stays dead


def test_timed_blocks_and_outside_clocks(module: RemoteModule) -> None:
    from grader.measurement import protocol
    from grader.testing import Call

    client = client_of(module)
    measured = protocol.block(client, [Call("double", torch.ones(3)), Call("double", 5)])
    assert 0 < measured.cpu_ns and 0 < measured.wall_ns
    outputs: list[Any] = measured.outputs
    assert torch.equal(outputs[0], torch.full((3,), 2.0)) and outputs[1] == 10


def test_probe_reports_allocations_and_flops(module: RemoteModule) -> None:
    from grader.measurement import protocol
    from grader.testing import Call

    out, stats = protocol.probe(client_of(module), Call("double", torch.ones(64, 64)))
    assert out.shape == (64, 64)
    assert stats["max_alloc_bytes"] == 64 * 64 * 4 and stats["ops"] >= 2


def test_backward_through_a_function(module: RemoteModule) -> None:
    x = torch.tensor([[1.0, 2.0]], requires_grad=True)
    w = torch.tensor([3.0, 4.0])
    found = module.weighted.backward(x, w, grad_output=torch.ones(1), scale=2.0)
    expected_x = x.detach().clone().requires_grad_(True)
    ((expected_x * w * 2.0).pow(2).sum(-1)).backward(torch.ones(1))
    assert torch.equal(found.output, torch.tensor([4.0 * 9 + 16.0 * 16]))
    assert len(found.inputs) == 1 and torch.allclose(found.inputs[0], expected_x.grad)
    assert found.params == {}


def test_backward_through_a_module_reads_parameter_gradients(module: RemoteModule) -> None:
    layer = module.Affine(3)
    x = torch.ones(2, 3)
    found = layer.backward(x, grad_output=torch.ones(2, 3))
    assert torch.equal(found.output, torch.tensor([[0.0, 1.0, 2.0]] * 2))
    assert found.inputs == []  # x did not require grad
    assert torch.equal(found.params["weight"], torch.full((3,), 2.0))
    assert found.params["bias"] is None  # frozen
    assert torch.equal(layer.attr("weight.grad"), torch.full((3,), 2.0))
    assert layer.attr("bias.requires_grad") is False


def test_the_submissions_names_shadow_proxy_methods(module: RemoteModule) -> None:
    assert torch.equal(module.backward(torch.ones(2)), -torch.ones(2))
    assert module.double(2) == 4  # the proxy still works with `call` and `attr` shadowed
    assert (
        module.call.value() == module.attr.value() == "module-level names that shadow the proxy's own methods"
    )


def test_gradient_checks_against_local_autograd(module: RemoteModule) -> None:
    from grader.testing import GradingFailure, assert_gradients_close

    def weighted(x: torch.Tensor, w: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
        return (x * w * scale).pow(2).sum(-1)

    x, w = torch.randn(3, 4, requires_grad=True), torch.randn(4, requires_grad=True)
    upstream = torch.randn(3)
    assert_gradients_close(
        module.weighted, weighted, [x, w], {"scale": 0.5}, grad_output=upstream, names=("x", "w")
    )

    def frozen_w(x: torch.Tensor, w: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
        return (x * w.detach() * scale).pow(2).sum(-1)  # same output, no gradient for w

    with pytest.raises(GradingFailure, match="the gradient of w: should be None"):
        assert_gradients_close(
            module.weighted, frozen_w, [x, w], {"scale": 0.5}, grad_output=upstream, names=("x", "w")
        )


def test_files_can_arrive_open(module: RemoteModule) -> None:
    assert module.count_lines(File(b"a\nb\nc\n", "lines.txt", open=True)) == 3


def test_generators_are_consumed_piece_by_piece(module: RemoteModule) -> None:
    gen = module.numbers(10)
    assert gen.take(4) == [0, 1, 2, 3] and gen.take(4) == [4, 5, 6, 7] and gen.take(4) == [8, 9]
    assert gen.take(4) == []


def test_warnings_are_reported_by_builtin_category(module: RemoteModule) -> None:
    value, caught = RemoteObject.call_with_warnings(module, "noisy")
    assert value == 1 and caught == ["UserWarning", "DeprecationWarning"]


def test_setups_give_each_side_its_own_state(module: RemoteModule) -> None:
    from grader.measurement import protocol
    from grader.testing import Call, Setup

    client = client_of(module)
    counter = Setup("Counter", 5)
    assert protocol.block(client, [Call.on(counter, "bump", by=2)]).outputs == [7]
    assert protocol.block(client, [Call.on(counter, "bump")]).outputs == [8]  # the same object, kept
    kept = Setup("pair").pick(1)  # item 1 of what pair() returns, never sent across
    assert protocol.block(client, [Call("total", kept, 10), Call.on(kept, "bump")]).outputs == [13, 4]
    out, stats = protocol.probe(client, Call.on(Setup("Counter", 0), "bump", by=1))
    assert out == 1 and stats["ops"] == 0


def test_setups_build_on_setups(module: RemoteModule) -> None:
    """A graph of objects, each made once per side from the ones before it (Setup.on and Setup
    arguments), however deep."""
    from grader.measurement import protocol
    from grader.testing import Call, Setup

    client = client_of(module)
    x = Setup("Node", 1)
    y = Setup.on(x, "join", x)  # 1 + 1
    z = Setup.on(y, "join", other=x, scale=10)  # 2 + 10
    assert protocol.block(
        client, [Call.on(z, "get"), Call.on(y, "get"), Call("total", Setup("Counter", 4), 1)]
    ).outputs == [12, 2, 5]
    assert RemoteObject.attr(module, "Node.made") == 3
    chain = x
    for _ in range(1500):  # deeper than the harness's recursion limit
        chain = Setup.on(chain, "join", y, scale=-1)
    assert (
        protocol.block(client, [Call.on(chain, "get"), Call.on(z, "join", chain)]).outputs[0] == 1 - 1500 * 2
    )
    assert RemoteObject.attr(module, "Node.made") == 3 + 1500 + 1


def test_values_kept_in_the_runner_collect_gradients(module: RemoteModule) -> None:
    """A tensor kept in the runner and passed inside a dict is that very tensor there: its
    gradient stays with it, and reads back (what a remote backward does not report)."""
    from grader.testing import kept_in_runner

    a = kept_in_runner(module.dict_loss, torch.tensor([1.0, 2.0], requires_grad=True))
    found = module.dict_loss.backward({"a": a, "b": torch.tensor([3.0, 4.0])})
    assert float(found.output) == 11.0 and found.inputs == []
    assert torch.equal(a.attr("grad"), torch.tensor([3.0, 4.0]))
    assert torch.equal(a.read_back(), torch.tensor([1.0, 2.0]))
