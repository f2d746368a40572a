"""Public tests: the lesson's worked examples, and small cases you can check by hand.

Run them with `grader test tensor-parallel tensor_parallel.py`.
"""

import torch
import torch.nn.functional as F

from grader.testing import assert_close, expect

BIAS_EVERY_RANK = "b2 added on every rank? Add it once, after summing the partial outputs"
GELU_AFTER_SUM = (
    "GeLU applied after the all-reduce? Apply it on each rank to its slice of the hidden activations, "
    "before the second linear"
)
LAYOUT_SWAPPED = (
    "split along the wrong dims? Weights are (out_features, in_features): w1 is split by its rows "
    "(dim 0), w2 by its columns (dim 1)"
)
WHOLE_TENSORS = (
    "a rank sent more than its share: in the ring each message is ONE chunk (torch.tensor_split(t, n)), "
    "not a whole tensor"
)


def worked_example():
    x = torch.tensor([1.0, 1.0])
    w1 = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    b1 = torch.tensor([0.0, 0.0])
    w2 = torch.tensor([[1.0, -1.0]])
    b2 = torch.tensor([0.5])
    return x, w1, b1, w2, b2


def run_ring(submission, tensors, steps=None):
    """The network: create the ranks, run `steps` steps (all 2(n - 1) by default), return every
    rank's result() and the bytes each rank sent. `rank.call("send", step)` calls the method
    `send` of your RingRank object, which lives in the sandbox."""
    n = len(tensors)
    ranks = [submission.RingRank(r, n, tensors[r]) for r in range(n)]
    sent = [0] * n
    for step in range(2 * (n - 1) if steps is None else steps):
        messages = [rank.call("send", step) for rank in ranks]
        for r, message in enumerate(messages):
            expect(isinstance(message, torch.Tensor), "send must return a torch.Tensor")
            sent[r] += message.numel() * message.element_size()
        for r, rank in enumerate(ranks):
            rank.call("receive", step, messages[(r - 1) % n])
    return [rank.call("result") for rank in ranks], sent


def test_mlp_worked_example(submission):
    """The lesson's example, n = 2: y = gelu(1) - gelu(2) + 0.5 = -0.613155."""
    x, w1, b1, w2, b2 = worked_example()
    w1_shards = [w1[0:1], w1[1:2]]
    b1_shards = [b1[0:1], b1[1:2]]
    w2_shards = [w2[:, 0:1], w2[:, 1:2]]
    assert_close(
        submission.tensor_parallel_mlp(x, w1_shards, b1_shards, w2_shards, b2),
        torch.tensor([-0.613155]),
        what="tensor_parallel_mlp on the worked example",
        misconceptions={
            BIAS_EVERY_RANK: torch.tensor([-0.113155]),
            GELU_AFTER_SUM: torch.tensor([0.341345]),
            "the tanh approximation of GeLU? Use the exact GeLU, F.gelu(z)": torch.tensor([-0.613406]),
        },
    )


def test_shard_mlp_layout(submission):
    """H = 4 hidden units on n = 2 ranks: w1 (4, 3) by rows, b1 by elements, w2 (2, 4) by columns."""
    w1 = torch.arange(12.0).reshape(4, 3)
    b1 = torch.arange(4.0) * 10
    w2 = torch.arange(8.0).reshape(2, 4) + 100
    got = submission.shard_mlp(w1, b1, w2, 2)
    expect(isinstance(got, tuple | list) and len(got) == 3, "shard_mlp must return three lists")
    assert_close(
        [list(part) for part in got],
        [[w1[0:2], w1[2:4]], [b1[0:2], b1[2:4]], [w2[:, 0:2], w2[:, 2:4]]],
        what="shard_mlp(w1, b1, w2, 2)",
        misconceptions={
            LAYOUT_SWAPPED: [[w1[:, 0:2], w1[:, 2:3]], [b1[0:2], b1[2:4]], [w2[0:1], w2[1:2]]],
            "w2 split by rows? It is split by input features, its columns (dim 1)": [
                [w1[0:2], w1[2:4]],
                [b1[0:2], b1[2:4]],
                [w2[0:1], w2[1:2]],
            ],
        },
    )


def test_mlp_matches_unsharded(submission):
    """n = 4 shards of an MLP with D = 6, H = 8, D_out = 5 give the unsharded MLP's output."""
    g = torch.Generator().manual_seed(0)
    first, second = torch.nn.Linear(6, 8), torch.nn.Linear(8, 5)
    for p in [*first.parameters(), *second.parameters()]:
        p.data = torch.randn(p.shape, generator=g)
    x = torch.randn(3, 6, generator=g)
    with torch.no_grad():
        want = second.double()(F.gelu(first.double()(x.double()))).float()
    w1, b1, w2, b2 = first.weight.float(), first.bias.float(), second.weight.float(), second.bias.float()
    w1_shards = list(torch.tensor_split(w1.detach(), 4, dim=0))
    b1_shards = list(torch.tensor_split(b1.detach(), 4))
    w2_shards = list(torch.tensor_split(w2.detach(), 4, dim=1))
    assert_close(
        submission.tensor_parallel_mlp(x, w1_shards, b1_shards, w2_shards, b2.detach()),
        want,
        what="tensor_parallel_mlp with n = 4, against the unsharded MLP",
        rtol=1e-4,
        atol=1e-5,
        misconceptions={BIAS_EVERY_RANK: want + 3 * b2.detach()},
    )


def test_ring_worked_example(submission):
    """The lesson's ring: [1, 2, 3], [10, 20, 30] and [100, 200, 300] all end as [111, 222, 333]."""
    tensors = [
        torch.tensor([1.0, 2.0, 3.0]),
        torch.tensor([10.0, 20.0, 30.0]),
        torch.tensor([100.0, 200.0, 300.0]),
    ]
    results, _ = run_ring(submission, tensors)
    for r, got in enumerate(results):
        assert_close(got, torch.tensor([111.0, 222.0, 333.0]), what=f"rank {r}'s result")


def test_ring_after_reduce_scatter(submission):
    """After the 2 reduce-scatter steps of the worked example: rank 0 holds [1, 222, 303], rank 1
    [11, 20, 333], rank 2 [111, 220, 300]."""
    tensors = [
        torch.tensor([1.0, 2.0, 3.0]),
        torch.tensor([10.0, 20.0, 30.0]),
        torch.tensor([100.0, 200.0, 300.0]),
    ]
    results, _ = run_ring(submission, tensors, steps=2)
    want = [[1.0, 222.0, 303.0], [11.0, 20.0, 333.0], [111.0, 220.0, 300.0]]
    for r, got in enumerate(results):
        assert_close(got, torch.tensor(want[r]), what=f"rank {r}'s buffer after reduce-scatter")


def test_ring_bytes(submission):
    """4 ranks, 12 float32 elements each: every rank sends 2 * 3/4 * 12 = 18 elements, 72 bytes."""
    g = torch.Generator().manual_seed(1)
    tensors = [torch.randn(12, generator=g) for _ in range(4)]
    results, sent = run_ring(submission, tensors)
    for r, got in enumerate(results):
        assert_close(got, torch.stack(tensors).sum(0), what=f"rank {r}'s result")
    expect(
        sent == [72, 72, 72, 72],
        "every rank must send exactly 72 bytes (18 float32 elements)",
        detail=f"bytes sent by ranks 0..3: {sent}",
        hint=WHOLE_TENSORS if max(sent) > 72 else "",
    )
