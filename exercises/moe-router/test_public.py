"""Public tests: the worked example of the lesson, and small cases you can check by hand.

Run them with `grader test moe-router moe_router.py`.
"""

import torch

from grader.testing import assert_close, expect

TIES_HINT = "order equal logits lowest index first: torch.sort(logits, dim=-1, descending=True, stable=True)"

LOGITS = torch.tensor([[2.0, 1.0, 0.0], [1.0, 3.0, 0.0], [3.0, 0.0, 1.0], [2.0, 0.0, 1.0]])
EXPERTS = torch.tensor([[0, 1], [1, 0], [0, 2], [0, 2]])
GATES = torch.tensor([[0.731059, 0.268941], [0.880797, 0.119203], [0.880797, 0.119203], [0.731059, 0.268941]])

SOFTMAX_ALL = (
    "softmax over all experts without renormalising? the gates are the softmax of the k selected logits"
)
TOKEN_ORDER = (
    "assignments queued by token index only? every first choice goes before any second choice, "
    "then token index"
)
NO_FACTOR_E = "the factor E (the number of experts) is missing: loss = E * sum_i f_i * P_i"
ALL_K_COUNTS = "f_i counted over all k choices? f_i is the fraction of tokens whose FIRST choice is expert i"
F_FROM_PROBS = "f_i taken from the probabilities? f_i counts first choices; only P_i is a mean of the softmax"
CAPACITY_NO_K = "capacity without the factor k? capacity = ceil(capacity_factor * n * k / E)"


def test_route_worked_example(submission):
    """The worked example: experts [[0, 1], [1, 0], [0, 2], [0, 2]], gates the softmax of the two selected."""
    gates, experts = submission.route(LOGITS, 2)
    assert_close(experts, EXPERTS, what="experts")
    full = torch.softmax(LOGITS, dim=-1).gather(-1, EXPERTS)
    assert_close(gates, GATES, what="gates", misconceptions={SOFTMAX_ALL: full})


def test_route_top1_gates_are_one(submission):
    """With top_k = 1 the softmax over one logit is 1.0: every gate is exactly 1."""
    gates, experts = submission.route(LOGITS, 1)
    assert_close(experts, torch.tensor([[0], [1], [0], [0]]), what="experts")
    assert_close(
        gates,
        torch.ones(4, 1),
        what="gates",
        misconceptions={SOFTMAX_ALL: torch.softmax(LOGITS, -1).max(-1, keepdim=True).values},
    )


def test_route_ties_lowest_index_first(submission):
    """Equal logits are ordered by expert index: [1, 3, 3, 0] with k = 2 gives experts [1, 2]."""
    gates, experts = submission.route(torch.tensor([[1.0, 3.0, 3.0, 0.0], [0.0, 0.0, 0.0, 0.0]]), 2)
    assert_close(
        experts,
        torch.tensor([[1, 2], [0, 1]]),
        what="experts",
        hint=TIES_HINT,
    )
    assert_close(gates, torch.full((2, 2), 0.5), what="gates")


def test_capacity_worked_example(submission):
    """Capacity ceil(1.0 * 4 * 2 / 3) = 3: expert 0 keeps t0, t2, t3 (first choices), drops t1's second."""
    kept = submission.capacity_keep(EXPERTS, 3, 3)
    by_token = torch.tensor([[True, True], [True, True], [True, True], [False, True]])
    assert_close(
        kept,
        torch.tensor([[True, True], [True, False], [True, True], [True, True]]),
        what="kept",
        misconceptions={TOKEN_ORDER: by_token},
    )


def test_capacity_none_keeps_all(submission):
    """capacity=None keeps every assignment."""
    kept = submission.capacity_keep(EXPERTS, 3, None)
    assert_close(kept, torch.ones(4, 2, dtype=torch.bool), what="kept")


def test_loss_worked_example(submission):
    """f = [3/4, 1/4, 0] (first choices), P = [0.5721, 0.3051, 0.1227]: loss = 3 * 0.5054 = 1.5161."""
    loss = submission.load_balancing_loss(LOGITS, EXPERTS)
    p = torch.softmax(LOGITS, dim=-1).mean(dim=0)
    f = torch.tensor([0.75, 0.25, 0.0])
    assert_close(
        loss,
        3 * (f * p).sum(),
        what="the load-balancing loss",
        misconceptions={
            NO_FACTOR_E: (f * p).sum(),
            ALL_K_COUNTS: 3 * (torch.tensor([0.5, 0.25, 0.25]) * p).sum(),
            F_FROM_PROBS: 3 * (p * p).sum(),
        },
    )


def test_loss_uniform_is_one(submission):
    """Perfectly balanced routing (f_i = P_i = 1/E) gives a loss of exactly 1."""
    logits = torch.zeros(4, 4)
    experts = torch.tensor([[0, 1], [1, 2], [2, 3], [3, 0]])
    assert_close(submission.load_balancing_loss(logits, experts), torch.tensor(1.0), what="the loss")


def one_expert_layer(d=2):
    """h = d, E = 3: expert e doubles, triples or negates relu(x) (w1 = identity)."""
    eye = torch.eye(d)
    w1 = torch.stack([eye, eye, eye])
    w2 = torch.stack([2 * eye, 3 * eye, -eye])
    return w1, w2


def test_moe_forward_small(submission):
    """Router = identity on the first 2 experts: tokens go to experts {0, 1}, y = sum of gate * expert(x)."""
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    router_weight = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    w1, w2 = one_expert_layer()
    y, loss = submission.moe_forward(x, router_weight, w1, w2, top_k=2)
    logits = x @ router_weight.t()  # [[1, 0, -1], [0, 2, -2], [1, 1, -2]]
    g0 = torch.softmax(torch.tensor([1.0, 0.0]), 0)  # token 0: experts 0, 1
    g1 = torch.softmax(torch.tensor([2.0, 0.0]), 0)  # token 1: experts 1, 0
    relu = torch.relu(x)
    want = torch.stack(
        [
            g0[0] * 2 * relu[0] + g0[1] * 3 * relu[0],
            g1[0] * 3 * relu[1] + g1[1] * 2 * relu[1],
            0.5 * 2 * relu[2] + 0.5 * 3 * relu[2],  # a tie: experts 0, 1
        ]
    )
    expect(
        isinstance(y, torch.Tensor) and y.shape == x.shape, "moe_forward's y must be a tensor of x's shape"
    )
    assert_close(y, want, what="y")
    p = torch.softmax(logits, -1).mean(0)
    f = torch.tensor([2 / 3, 1 / 3, 0.0])  # first choices: experts 0, 1, 0
    assert_close(
        loss,
        3 * (f * p).sum(),
        what="the loss",
        misconceptions={
            NO_FACTOR_E: (f * p).sum(),
            ALL_K_COUNTS: 3 * (torch.tensor([1 / 2, 1 / 2, 0.0]) * p).sum(),
            F_FROM_PROBS: 3 * (p * p).sum(),
        },
    )


def test_moe_forward_capacity(submission):
    """capacity_factor 1.0 on the worked example's logits with t3 = [0, 1, 2]: capacity 3, nothing dropped.

    Router = identity, so the logits are x. Experts [[0, 1], [1, 0], [0, 2], [2, 1]]: expert 0 gets 3
    assignments, expert 1 gets 3, expert 2 gets 2, and capacity = ceil(1.0 * 4 * 2 / 3) = 3 keeps them
    all. A capacity of ceil(1.0 * 4 / 3) = 2 would drop t1's second choice (expert 0, queued after the
    first choices of t0 and t2) and t3's second choice (expert 1, queued after t1's first choice and
    t0's second).
    """
    x = torch.tensor([[2.0, 1.0, 0.0], [1.0, 3.0, 0.0], [3.0, 0.0, 1.0], [0.0, 1.0, 2.0]])
    w1, w2 = one_expert_layer(3)
    y, _ = submission.moe_forward(x, torch.eye(3), w1, w2, top_k=2, capacity_factor=1.0)
    g1 = torch.softmax(torch.tensor([2.0, 1.0]), 0)  # [0.7311, 0.2689]: t0 and t3
    g2 = torch.softmax(torch.tensor([3.0, 1.0]), 0)  # [0.8808, 0.1192]: t1 and t2
    # x >= 0, so relu(x) = x; experts 0, 1, 2 give 2x, 3x, -x
    want = torch.stack(
        [
            g1[0] * 2 * x[0] + g1[1] * 3 * x[0],  # experts 0, 1
            g2[0] * 3 * x[1] + g2[1] * 2 * x[1],  # experts 1, 0
            g2[0] * 2 * x[2] + g2[1] * -x[2],  # experts 0, 2
            g1[0] * -x[3] + g1[1] * 3 * x[3],  # experts 2, 1
        ]
    )
    no_k = torch.stack([want[0], g2[0] * 3 * x[1], want[2], g1[0] * -x[3]])  # capacity 2
    expect(
        isinstance(y, torch.Tensor) and y.shape == x.shape, "moe_forward's y must be a tensor of x's shape"
    )
    assert_close(y, want, what="y", misconceptions={CAPACITY_NO_K: no_k})
