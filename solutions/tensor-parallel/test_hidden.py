"""Hidden tests for tensor-parallel: shard layouts for every split, the sharded MLP against the
unsharded one (torch.nn.Linear and F.gelu in float64), its gradients, and the ring all-reduce
against torch's sum, with exact byte counts, uneven and empty chunks, dtypes and an altered message."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grader.remote import RemoteObject
from grader.testing import (
    assert_close,
    assert_gradients_close,
    call_unchanged,
    expect,
    kept_in_runner,
    shrink,
    tolerance,
)

BIAS_EVERY_RANK = "b2 added on every rank? Add it once, after summing the partial outputs"
GELU_AFTER_SUM = (
    "GeLU applied after the all-reduce? Apply it on each rank to its slice of the hidden activations, "
    "before the second linear"
)
TANH_GELU = "the tanh approximation of GeLU? Use the exact GeLU, F.gelu(z)"
LAYOUT_SWAPPED = (
    "split along the wrong dims? Weights are (out_features, in_features): w1 is split by its rows "
    "(dim 0), w2 by its columns (dim 1)"
)
W2_BY_ROWS = "w2 split by rows? It is split by input features, its columns (dim 1)"
CHUNK_RULE = (
    "split with torch.chunk? Split with torch.tensor_split(t, n): n pieces whose sizes differ by at most "
    "one, the larger ones first"
)
WHOLE_TENSORS = (
    "a rank sent more than its share: in the ring each message is ONE chunk (torch.tensor_split(t, n)), "
    "not a whole tensor"
)
RING_HINT = (
    "follow the schedule: reduce-scatter step s sends chunk (r - s) % n and adds into chunk (r - 1 - s) % n; "
    "all-gather step k sends chunk (r + 1 - k) % n and writes chunk (r - k) % n"
)
SHARED_STATE = (
    "a rank's result must follow from its own tensor and the messages it receives only, each added or "
    "written where the schedule says: no class attributes, globals or other state shared between ranks"
)


def randn(rng, *shape, dtype=torch.float32):
    return torch.from_numpy(rng.standard_normal(shape)).to(dtype)


# ---------------------------------------------------------------------------- part (a)


def split(w1, b1, w2, n, how="tensor_split"):
    """The shards of the lesson (and of likely mistakes)."""
    if how == "tensor_split":
        return (
            list(torch.tensor_split(w1, n, dim=0)),
            list(torch.tensor_split(b1, n)),
            list(torch.tensor_split(w2, n, dim=1)),
        )
    if how == "swapped":
        return (
            list(torch.tensor_split(w1, n, dim=1)),
            list(torch.tensor_split(b1, n)),
            list(torch.tensor_split(w2, n, dim=0)),
        )
    if how == "w2-rows":
        return (
            list(torch.tensor_split(w1, n, dim=0)),
            list(torch.tensor_split(b1, n)),
            list(torch.tensor_split(w2, n, dim=0)),
        )
    return (list(torch.chunk(w1, n, dim=0)), list(torch.chunk(b1, n)), list(torch.chunk(w2, n, dim=1)))


def oracle(x, w1, b1, w2, b2):
    """The unsharded MLP with torch.nn.Linear and the exact GeLU, in float64, returned in x's dtype."""
    first = torch.nn.Linear(w1.shape[1], w1.shape[0], dtype=torch.float64)
    second = torch.nn.Linear(w2.shape[1], w2.shape[0], dtype=torch.float64)
    with torch.no_grad():
        first.weight.copy_(w1)
        first.bias.copy_(b1)
        second.weight.copy_(w2)
        second.bias.copy_(b2)
        return second(F.gelu(first(x.double()))).to(x.dtype)


def mlp_mistakes(x, w1, b1, w2, b2, n):
    xd = x.double()
    w1d, b1d, w2d, b2d = w1.double(), b1.double(), w2.double(), b2.double()
    pre = F.linear(F.linear(xd, w1d, b1d), w2d)
    tanh = F.linear(F.gelu(F.linear(xd, w1d, b1d), approximate="tanh"), w2d, b2d)
    found = {GELU_AFTER_SUM: (F.gelu(pre) + b2d).to(x.dtype), TANH_GELU: tanh.to(x.dtype)}
    if n > 1:
        found[BIAS_EVERY_RANK] = (oracle(x, w1, b1, w2, b2).double() + (n - 1) * b2d).to(x.dtype)
    return found


def make_mlp(rng, d, h, d_out, dtype=torch.float32):
    scale = 1.0 / np.sqrt(d)
    return (
        randn(rng, h, d, dtype=dtype) * scale,
        randn(rng, h, dtype=dtype) * 0.5,
        randn(rng, d_out, h, dtype=dtype) / np.sqrt(max(h, 1)),
        randn(rng, d_out, dtype=dtype) + 1.0,  # a bias far from 0, so that n copies of it show
    )


@pytest.mark.parametrize(
    ("h", "n"),
    [
        pytest.param(8, 4, id="H8-n4"),
        pytest.param(10, 4, id="H10-n4-uneven"),
        pytest.param(6, 4, id="H6-n4-uneven"),
        pytest.param(3, 8, id="H3-n8-empty-shards"),
        pytest.param(5, 1, id="H5-n1"),
    ],
)
def test_shard_mlp_splits(submission, rng, h, n):
    """shard_mlp splits the hidden units as torch.tensor_split does: rows of w1, columns of w2."""
    w1, b1, w2, _ = make_mlp(rng, 3, h, 2)
    got = submission.shard_mlp(w1, b1, w2, n)
    expect(isinstance(got, tuple | list) and len(got) == 3, "shard_mlp must return three lists")
    want = [list(part) for part in split(w1, b1, w2, n)]
    mistakes = {LAYOUT_SWAPPED: split(w1, b1, w2, n, "swapped"), W2_BY_ROWS: split(w1, b1, w2, n, "w2-rows")}
    mistakes[CHUNK_RULE] = split(w1, b1, w2, n, "chunk")
    assert_close(
        [list(part) for part in got],
        want,
        what=f"shard_mlp for H = {h} hidden units over n = {n} ranks",
        misconceptions={hint: [list(part) for part in value] for hint, value in mistakes.items()},
    )


@pytest.mark.parametrize("n", [1, 2, 3, 4, 8])
def test_mlp_random(submission, seed, n):
    """tensor_parallel_mlp with n ranks against the unsharded MLP (nn.Linear, F.gelu, float64)."""

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        w1, b1, w2, b2 = make_mlp(rng, sizes["d"], sizes["h"], sizes["d_out"])
        x = randn(rng, sizes["rows"], sizes["d"])
        assert_close(
            submission.tensor_parallel_mlp(x, *split(w1, b1, w2, n), b2),
            oracle(x, w1, b1, w2, b2),
            what=f"tensor_parallel_mlp with n = {n} against the unsharded MLP",
            rtol=1e-4,
            atol=1e-5,
            misconceptions=mlp_mistakes(x, w1, b1, w2, b2, n),
        )

    shrink(
        check,
        {"rows": 5, "d": 12, "h": 4 * n + 3, "d_out": 6},
        seed=seed,
        minimum={"rows": 1, "d": 1, "h": n, "d_out": 1},
    )


@pytest.mark.parametrize(
    "lead",
    [pytest.param((), id="a-single-vector"), pytest.param((2, 3), id="batch-tokens")],
)
def test_mlp_leading_dims(submission, rng, lead):
    """x of shape (D,) and (B, T, D): the MLP acts on the last dim; the output is (..., D_out)."""
    w1, b1, w2, b2 = make_mlp(rng, 8, 10, 4)
    x = randn(rng, *lead, 8)
    assert_close(
        submission.tensor_parallel_mlp(x, *split(w1, b1, w2, 3), b2),
        oracle(x, w1, b1, w2, b2),
        what=f"tensor_parallel_mlp for x of shape {tuple(x.shape)}",
        rtol=1e-4,
        atol=1e-5,
        misconceptions=mlp_mistakes(x, w1, b1, w2, b2, 3),
    )


def test_mlp_empty_shards(submission, rng):
    """H = 3 hidden units over n = 8 ranks: five ranks hold empty shards and contribute zeros."""
    w1, b1, w2, b2 = make_mlp(rng, 5, 3, 4)
    x = randn(rng, 4, 5)
    assert_close(
        submission.tensor_parallel_mlp(x, *split(w1, b1, w2, 8), b2),
        oracle(x, w1, b1, w2, b2),
        what="tensor_parallel_mlp with empty shards",
        rtol=1e-4,
        atol=1e-5,
        misconceptions=mlp_mistakes(x, w1, b1, w2, b2, 8),
    )


def test_mlp_float64(submission, rng):
    """A float64 input and float64 weights give a float64 output with float64's precision."""
    w1, b1, w2, b2 = make_mlp(rng, 7, 9, 3, dtype=torch.float64)
    x = randn(rng, 4, 7, dtype=torch.float64)
    got = submission.tensor_parallel_mlp(x, *split(w1, b1, w2, 4), b2)
    expect(
        isinstance(got, torch.Tensor) and got.dtype == torch.float64,
        "a float64 input must give a float64 output",
    )
    assert_close(
        got,
        oracle(x, w1, b1, w2, b2),
        rtol=1e-10,
        atol=1e-12,
        misconceptions=mlp_mistakes(x, w1, b1, w2, b2, 4),
    )


def test_mlp_gradients(submission, reference, rng):
    """Backward through tensor_parallel_mlp with n = 3: the gradients of x and of b2."""
    w1, b1, w2, b2 = make_mlp(rng, 6, 9, 4)
    x = randn(rng, 5, 6)
    shards = split(w1, b1, w2, 3)
    assert_close(
        submission.tensor_parallel_mlp(x, *shards, b2),
        oracle(x, w1, b1, w2, b2),
        rtol=1e-4,
        atol=1e-5,
        misconceptions=mlp_mistakes(x, w1, b1, w2, b2, 3),
    )
    assert_gradients_close(
        submission.tensor_parallel_mlp,
        reference.tensor_parallel_mlp,
        (x.clone().requires_grad_(), *shards, b2.clone().requires_grad_()),
        grad_output=randn(rng, 5, 4),
        names=("x", "b2"),
        rtol=1e-4,
        atol=1e-5,
        hint="use differentiable tensor operations only (no .item(), .numpy(), .detach() or in-place "
        "writes into the inputs); b2 is added once",
    )


def test_mlp_inputs_unchanged(submission, rng):
    """shard_mlp and tensor_parallel_mlp leave the weights, the shards and x as they were."""
    # inputs only: the values are checked by test_shard_mlp_splits and test_mlp_random
    w1, b1, w2, b2 = make_mlp(rng, 4, 6, 3)
    call_unchanged(submission.shard_mlp, w1, b1, w2, 3, names=("w1", "b1", "w2", "n"), what="shard_mlp")
    x = randn(rng, 2, 4)
    call_unchanged(
        submission.tensor_parallel_mlp,
        x,
        *split(w1, b1, w2, 3),
        b2,
        names=("x", "w1_shards", "b1_shards", "w2_shards", "b2"),
        what="tensor_parallel_mlp",
    )


# ---------------------------------------------------------------------------- part (b)


def invoke(obj, name, *args):
    if isinstance(obj, RemoteObject):
        return obj.call(name, *args)
    return getattr(obj, name)(*args)


def run_ring(make_rank, tensors, *, steps=None, tamper=None):
    """The network: every rank sends, then every rank receives from its left neighbour. Returns
    the ranks' results and the bytes each rank sent. `tamper(step, messages)` may alter messages
    on their way (after they are counted)."""
    n = len(tensors)
    ranks = [make_rank(r, n, tensors[r]) for r in range(n)]
    sent = [0] * n
    for step in range(2 * (n - 1) if steps is None else steps):
        messages = [invoke(rank, "send", step) for rank in ranks]
        for r, message in enumerate(messages):
            expect(isinstance(message, torch.Tensor), "send must return a torch.Tensor")
            expect(
                message.dtype == tensors[r].dtype and message.dim() == 1,
                "every message must be a 1-D tensor in the tensors' dtype",
                hint="send a chunk of the buffer as it is, without converting it",
            )
            sent[r] += message.numel() * message.element_size()
        if tamper is not None:
            messages = tamper(step, messages)
        for r, rank in enumerate(ranks):
            invoke(rank, "receive", step, messages[(r - 1) % n])
    return [invoke(rank, "result") for rank in ranks], sent


def expected_bytes(numel, n, element_size):
    if n == 1:
        return [0]
    sizes = [len(c) for c in torch.tensor_split(torch.empty(numel), n)]
    return [element_size * (2 * numel - sizes[(r + 1) % n] - sizes[(r + 2) % n]) for r in range(n)]


def check_results(results, tensors, *, hint=RING_HINT, what="rank {r}'s result"):
    total = torch.stack(tensors).double().sum(0).to(tensors[0].dtype)
    for r, got in enumerate(results):
        assert_close(got, total, what=what.format(r=r), **tolerance(tensors[0].dtype), hint=hint)


def numel_for(kind, n):
    return {"multiple": 6 * n, "uneven": 6 * n + n // 2 + 1, "small": max(n - 3, 1)}[kind]


CASES = [
    pytest.param(2, "uneven", id="n2-N-not-a-multiple"),
    pytest.param(3, "uneven", id="n3-N-not-a-multiple"),
    pytest.param(4, "uneven", id="n4-N-not-a-multiple"),
    pytest.param(4, "small", id="n4-N-smaller-than-n"),
    pytest.param(8, "uneven", id="n8-N-not-a-multiple"),
]


@pytest.mark.parametrize(("n", "kind"), CASES)
def test_ring_all_reduce(submission, rng, n, kind):
    """Every rank ends with the sum of all tensors (torch's sum as the oracle), and each rank sends exactly
    2N - |chunk (r+1) % n| - |chunk (r+2) % n| elements: 2(n-1)/n of the tensor."""
    numel = numel_for(kind, n)
    tensors = [randn(rng, numel) for _ in range(n)]
    results, sent = run_ring(submission.RingRank, tensors)
    check_results(results, tensors)
    want = expected_bytes(numel, n, 4)
    expect(
        sent == want,
        f"with n = {n} ranks, some rank did not send exactly its share of bytes (2(n - 1)/n of the tensor, "
        "chunks as torch.tensor_split cuts them)",
        detail=f"bytes sent by each rank: {sent}; expected {want}",
        hint=WHOLE_TENSORS if max(sent) >= 2 * 4 * numel else CHUNK_RULE,
    )


def test_ring_single_rank(submission, rng):
    """n = 1: there are no steps; the rank's result is its own tensor."""
    t = randn(rng, 7)
    results, sent = run_ring(submission.RingRank, [t])
    assert_close(results[0], t, what="the result of the only rank")


@pytest.mark.parametrize(("n", "numel"), [pytest.param(4, 10, id="n4-N10"), pytest.param(3, 2, id="n3-N2")])
def test_ring_after_reduce_scatter(submission, rng, n, numel):
    """After the n - 1 reduce-scatter steps, rank r's chunk (r + 1) % n is the complete sum of that chunk."""
    tensors = [randn(rng, numel) for _ in range(n)]
    results, _ = run_ring(submission.RingRank, tensors, steps=n - 1)
    total = torch.stack(tensors).sum(0)
    for r, got in enumerate(results):
        expect(
            isinstance(got, torch.Tensor) and got.shape == (numel,), "result() must return the whole buffer"
        )
        owned = (r + 1) % n
        assert_close(
            torch.tensor_split(got, n)[owned],
            torch.tensor_split(total, n)[owned],
            what=f"chunk {owned} of rank {r} after reduce-scatter",
            hint="after reduce-scatter rank r holds the full sum in chunk (r + 1) % n: at step s it adds "
            "what it receives into chunk (r - 1 - s) % n",
        )


@pytest.mark.parametrize(
    "dtype",
    [pytest.param(torch.float64, id="float64"), pytest.param(torch.bfloat16, id="bfloat16")],
)
def test_ring_dtypes(submission, rng, dtype):
    """float64 and bfloat16 tensors on 3 ranks: messages and results in their dtype, bytes counted in it."""
    n, numel = 3, 8
    tensors = [randn(rng, numel, dtype=dtype) for _ in range(n)]
    results, sent = run_ring(submission.RingRank, tensors)
    for got in results:
        expect(
            isinstance(got, torch.Tensor) and got.dtype == dtype,
            "result() must be in the tensors' dtype",
        )
    want = expected_bytes(numel, n, torch.empty(0, dtype=dtype).element_size())
    expect(
        sent == want,
        "some rank did not send exactly its share of bytes in the tensors' dtype",
        detail=f"bytes sent by each rank: {sent}; expected {want}",
        hint="each message is one chunk of the buffer, in the tensors' own dtype (2 bytes per bfloat16 "
        "element, 8 per float64 element)",
    )
    check_results(results, tensors)


def tamper_with(alterations):
    """A faulty link: add a value to one message at given (step, sender)s."""

    def tamper(step, messages):
        messages = list(messages)
        for (at_step, sender), delta in alterations.items():
            if at_step == step and messages[sender].numel():
                messages[sender] = messages[sender] + delta
        return messages

    return tamper


def test_ring_messages_are_used(submission, reference, rng):
    """A message altered on its way changes every rank's result exactly as the ring propagates it."""
    n, numel = 4, 12
    alterations = {(0, 2): 100.0, (1, 1): 1000.0, (4, 0): -500.0}  # in both phases
    tensors = [randn(rng, numel) for _ in range(n)]
    results, _ = run_ring(submission.RingRank, tensors, tamper=tamper_with(alterations))
    expected, _ = run_ring(reference.RingRank, tensors, tamper=tamper_with(alterations))
    for r, got in enumerate(results):
        assert_close(got, expected[r], what=f"rank {r}'s result after an altered message", hint=SHARED_STATE)


def test_ring_input_unchanged(submission, rng):
    """A rank works on its own copy: the tensor it was created with is left as it was."""
    # inputs only: the sums are checked by test_ring_all_reduce and test_ring_worked_example
    n, numel = 3, 9  # equal chunks: a wrong chunk index or rule fails those tests, not this one
    tensors = [randn(rng, numel) for _ in range(n)]
    kept = [kept_in_runner(submission.RingRank, t) for t in tensors]
    run_ring(lambda r, n, _: submission.RingRank(r, n, kept[r]), tensors)
    for r in range(n):
        assert_close(
            kept[r].read_back(),
            tensors[r],
            what=f"the tensor rank {r} was created with, after the all-reduce",
            hint="clone the tensor in __init__ and work on the copy",
        )
