"""Hidden tests of moe-router: routing, capacity, the load-balancing loss and the whole layer against
straightforward float64 loop implementations written here (the oracle: one token and one choice at a
time, exactly as the lesson states the rules), ties, edge cases, gradients against autograd through
the float64 loop, inputs left unchanged, and the tensor-op count as the number of tokens grows.

Random layers are generated so that no two logits of a token are closer than 1e-3: the ranking is
then the same in float32 and float64, whatever order of summation a submission uses.
"""

import math

import numpy as np
import pytest
import torch

from grader.testing import Call, assert_close, assert_gradients_close, call_unchanged, expect, shrink

# one wording per mistake, the same as in the public tests
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
DROPPED_ADDED = "dropped assignments still contribute? a dropped assignment adds nothing to y"
RENORMALISED = "gates renormalised after dropping? the kept gates stay as they were"
TIES_HINT = "order equal logits lowest index first: torch.sort(logits, dim=-1, descending=True, stable=True)"
CAPACITY_NO_K = "capacity without the factor k? capacity = ceil(capacity_factor * n * k / E)"
TOL = {"rtol": 1e-5, "atol": 1e-5}  # float32 results against the float64 oracle


# ---------------------------------------------------------------------------- the oracle (loops)


def oracle_route(logits, k):
    """Per token: experts by (-logit, index), gates = softmax of the selected logits; float64."""
    rows = logits.double().tolist()
    experts, gates = [], []
    for row in rows:
        chosen = sorted(range(len(row)), key=lambda i: (-row[i], i))[:k]
        top = max(row[i] for i in chosen)
        w = [math.exp(row[i] - top) for i in chosen]
        experts.append(chosen)
        gates.append([v / sum(w) for v in w])
    return torch.tensor(gates, dtype=torch.float64), torch.tensor(experts, dtype=torch.int64).reshape(-1, k)


def oracle_keep(experts, n_experts, capacity):
    """Fill each expert's queue: rank 0 of every token, then rank 1, ...; keep the first `capacity`."""
    n, k = experts.shape
    kept = [[capacity is None] * k for _ in range(n)]
    if capacity is None:
        return torch.tensor(kept, dtype=torch.bool).reshape(n, k)
    used = [0] * n_experts
    for r in range(k):
        for t in range(n):
            e = int(experts[t, r])
            if used[e] < capacity:
                kept[t][r] = True
                used[e] += 1
    return torch.tensor(kept, dtype=torch.bool).reshape(n, k)


def oracle_loss(logits, experts):
    """E * sum_i f_i * P_i with a loop over tokens (differentiable through P_i)."""
    n, n_experts = logits.shape
    counts = [0] * n_experts
    for t in range(n):
        counts[int(experts[t, 0])] += 1
    probs = sum(torch.softmax(logits[t], dim=0) for t in range(n)) / n
    f = torch.tensor(counts, dtype=logits.dtype) / n
    return n_experts * (f * probs).sum()


def oracle_moe(x, router_weight, w1, w2, top_k=2, capacity_factor=None):
    """The layer, one token and one choice at a time, differentiable (autograd gives the oracle's
    gradients)."""
    n = x.shape[0]
    n_experts = router_weight.shape[0]
    logits = torch.stack([router_weight @ x[t] for t in range(n)])
    _, experts = oracle_route(logits.detach(), top_k)
    capacity = None if capacity_factor is None else math.ceil(capacity_factor * n * top_k / n_experts)
    kept = oracle_keep(experts, n_experts, capacity)
    rows = []
    for t in range(n):
        chosen = [int(e) for e in experts[t]]
        gates = torch.softmax(torch.stack([logits[t, e] for e in chosen]), dim=0)
        row = torch.zeros_like(x[t])
        for r, e in enumerate(chosen):
            if kept[t, r]:
                row = row + gates[r] * (torch.relu(x[t] @ w1[e]) @ w2[e])
        rows.append(row)
    return torch.stack(rows), oracle_loss(logits, experts)


# ---------------------------------------------------------------------------- the mistakes


def softmax_all(logits, experts):
    return torch.softmax(logits.double(), dim=-1).gather(-1, experts)


def keep_by_token(experts, n_experts, capacity):
    """Queues filled token by token (token 0's choices, then token 1's ...)."""
    n, k = experts.shape
    flipped = oracle_keep(experts.reshape(-1, 1), n_experts, capacity)
    return flipped.reshape(n, k)


def loss_mistakes(logits, experts):
    logits = logits.double()
    n, n_experts = logits.shape
    p = torch.softmax(logits, dim=-1).mean(dim=0)
    f = torch.bincount(experts[:, 0], minlength=n_experts).double() / n
    f_all = torch.bincount(experts.reshape(-1), minlength=n_experts).double() / experts.numel()
    found = {NO_FACTOR_E: (f * p).sum(), F_FROM_PROBS: n_experts * (p * p).sum()}
    if experts.shape[1] > 1:
        found[ALL_K_COUNTS] = n_experts * (f_all * p).sum()
    return {label: v.to(logits.dtype) for label, v in found.items()}


def moe_mistakes(x, router_weight, w1, w2, top_k, capacity_factor, dtype):
    """y of the likely mistakes of the capacity and combine steps (float64, cast to dtype)."""
    x, rw, w1, w2 = (t.double() for t in (x, router_weight, w1, w2))
    n, n_experts = x.shape[0], rw.shape[0]
    logits = x @ rw.t()
    gates, experts = oracle_route(logits, top_k)
    capacity = None if capacity_factor is None else math.ceil(capacity_factor * n * top_k / n_experts)
    outputs = torch.stack([torch.relu(x @ w1[e]) @ w2[e] for e in range(n_experts)], dim=1)  # (n, E, d)
    picked = outputs.gather(1, experts[:, :, None].expand(-1, -1, x.shape[1]))  # (n, k, d)

    def combine(g, keep):
        return ((g * keep.double())[:, :, None] * picked).sum(dim=1).to(dtype)

    kept = oracle_keep(experts, n_experts, capacity)
    found = {SOFTMAX_ALL: combine(softmax_all(logits, experts), kept)}
    if capacity is not None:
        found[TOKEN_ORDER] = combine(gates, keep_by_token(experts, n_experts, capacity))
        found[DROPPED_ADDED] = combine(gates, torch.ones_like(kept))
        kept_sum = (gates * kept.double()).sum(dim=1, keepdim=True)
        renorm = torch.where(kept_sum > 0, gates / kept_sum.clamp_min(1e-300), gates)
        found[RENORMALISED] = combine(renorm, kept)
        if top_k > 1:  # Switch Transformer's k = 1 formula, ceil(capacity_factor * n / E), used for any k
            capacity_no_k = math.ceil(capacity_factor * n / n_experts)
            found[CAPACITY_NO_K] = combine(gates, oracle_keep(experts, n_experts, capacity_no_k))
    return found


# ---------------------------------------------------------------------------- inputs


def separated_logits(rng, n, n_experts, dtype=torch.float32):
    """Random logits (n, E), every pair of a row at least 1e-3 apart."""
    while True:
        z = rng.standard_normal((n, n_experts)) * 2.0
        gaps = np.diff(np.sort(z, axis=1), axis=1)
        if n_experts == 1 or gaps.min() > 1e-3:
            return torch.from_numpy(z).to(dtype)


def random_layer(rng, n, d, h, n_experts, dtype=torch.float32, skew=0.0):
    """x, router_weight, w1, w2 whose float64 logits are separated by 1e-3 in every row; `skew` adds
    a preference for expert 0 (so that capacity bites)."""
    while True:
        x = rng.standard_normal((n, d))
        rw = rng.standard_normal((n_experts, d)) / math.sqrt(d) * 2.0
        if skew:  # x's last feature is a constant 1, and expert 0's router row has a bias on it
            x[:, -1] = 1.0
            rw[0, -1] += skew
        x32, rw32 = (torch.from_numpy(a).to(dtype) for a in (x, rw))
        logits = (x32.double() @ rw32.double().t()).numpy()
        gaps = np.diff(np.sort(logits, axis=1), axis=1)
        if n_experts == 1 or gaps.min() > 1e-3:
            break
    w1 = torch.from_numpy(rng.standard_normal((n_experts, d, h)) / math.sqrt(d)).to(dtype)
    w2 = torch.from_numpy(rng.standard_normal((n_experts, h, d)) / math.sqrt(h)).to(dtype)
    return x32, rw32, w1, w2


# ---------------------------------------------------------------------------- route


def test_route_random(submission, seed):
    """Random logits, several numbers of tokens, experts and k, against a per-token loop."""

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        n_experts = sizes["experts"]
        k = min(sizes["k"], n_experts)
        logits = separated_logits(rng, sizes["n"], n_experts)
        gates, experts = submission.route(logits, k)
        want_gates, want_experts = oracle_route(logits, k)
        assert_close(experts, want_experts, what="experts")
        assert_close(
            gates,
            want_gates.float(),
            what="gates",
            misconceptions={SOFTMAX_ALL: softmax_all(logits, want_experts).float()},
            **TOL,
        )

    shrink(
        check, {"n": 24, "experts": 8, "k": 3}, seed=seed, minimum={"n": 1, "experts": 2, "k": 1}, budget=30
    )


@pytest.mark.parametrize("k", [pytest.param(1, id="k=1"), pytest.param(5, id="k=E")])
def test_route_extreme_k(submission, rng, k):
    """k = 1 (every gate exactly 1.0) and k = E (every expert, softmax over all of them)."""
    logits = separated_logits(rng, 10, 5)
    gates, experts = submission.route(logits, k)
    want_gates, want_experts = oracle_route(logits, k)
    assert_close(experts, want_experts, what="experts")
    found = {} if k == 5 else {SOFTMAX_ALL: softmax_all(logits, want_experts).float()}
    assert_close(gates, want_gates.float(), what="gates", misconceptions=found, **TOL)


@pytest.mark.hint(TIES_HINT)
def test_route_ties(submission):
    """Equal logits are ordered lowest index first, also when the tie straddles the k-th place."""
    logits = torch.tensor(
        [
            [0.0, 0.0, 0.0, 0.0, 0.0],
            [1.0, 2.0, 1.0, 2.0, 0.0],
            [3.0, 1.0, 1.0, 1.0, 1.0],
            [0.0, 1.0, 0.0, 1.0, 1.0],
            [-1.0, -1.0, 5.0, -1.0, 5.0],
        ]
    )
    gates, experts = submission.route(logits, 3)
    want_gates, want_experts = oracle_route(logits, 3)
    assert_close(experts, want_experts, what="experts")
    assert_close(gates, want_gates.float(), what="gates", **TOL)


def test_route_float64(submission, rng):
    """float64 logits give float64 gates, to float64's precision."""
    logits = separated_logits(rng, 12, 6, torch.float64)
    gates, experts = submission.route(logits, 2)
    want_gates, want_experts = oracle_route(logits, 2)
    assert_close(experts, want_experts, what="experts")
    assert_close(gates, want_gates, what="gates", rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k", [pytest.param(0, id="k=0"), pytest.param(5, id="k-above-E")])
def test_route_invalid_k(submission, k):
    """top_k < 1 or top_k > E raises ValueError."""
    try:
        submission.route(torch.zeros(3, 4), k)
    except ValueError:
        return
    pytest.fail(f"route with top_k={k} and 4 experts returned normally; it must raise ValueError")


# ---------------------------------------------------------------------------- capacity


def random_assignments(rng, n, n_experts, k, skew=True):
    """experts (n, k) as route returns them, with a preference for the low experts (queues overflow)."""
    logits = separated_logits(rng, n, n_experts).double()
    if skew:
        logits = logits - torch.arange(n_experts, dtype=torch.float64)
    return oracle_route(logits, k)[1]


def test_capacity_random(submission, seed):
    """Random assignments and capacities, against queues filled one assignment at a time."""

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        n_experts = sizes["experts"]
        k = min(sizes["k"], n_experts)
        experts = random_assignments(rng, sizes["n"], n_experts, k)
        capacity = sizes["capacity"]
        assert_close(
            submission.capacity_keep(experts, n_experts, capacity),
            oracle_keep(experts, n_experts, capacity),
            what="kept",
            misconceptions={TOKEN_ORDER: keep_by_token(experts, n_experts, capacity)},
        )

    shrink(
        check,
        {"n": 32, "experts": 6, "k": 2, "capacity": 7},
        seed=seed,
        minimum={"n": 1, "experts": 2, "k": 1, "capacity": 1},
        budget=30,
    )


@pytest.mark.parametrize("k", [pytest.param(1, id="k=1"), pytest.param(3, id="k=3")])
def test_capacity_orders(submission, rng, k):
    """k = 1 and k = 3 with tight queues: rank first, then token index."""
    experts = random_assignments(rng, 20, 4, k)
    capacity = math.ceil(1.0 * 20 * k / 4)
    assert_close(
        submission.capacity_keep(experts, 4, capacity),
        oracle_keep(experts, 4, capacity),
        what="kept",
        misconceptions={TOKEN_ORDER: keep_by_token(experts, 4, capacity)},
    )


@pytest.mark.parametrize(
    "capacity",
    [
        pytest.param(0, id="capacity-0"),
        pytest.param(40, id="capacity-above-demand"),
        pytest.param(None, id="none"),
    ],
)
def test_capacity_edges(submission, rng, capacity):
    """capacity 0 keeps nothing; a capacity above the demand and None keep everything."""
    experts = random_assignments(rng, 12, 3, 2)
    kept = submission.capacity_keep(experts, 3, capacity)
    expect(
        isinstance(kept, torch.Tensor) and kept.dtype == torch.bool,
        "capacity_keep must return a torch.bool tensor",
    )
    assert_close(kept, oracle_keep(experts, 3, capacity), what="kept")


# ---------------------------------------------------------------------------- the loss


@pytest.mark.parametrize(
    "k", [pytest.param(1, id="k=1"), pytest.param(2, id="k=2"), pytest.param(4, id="k=4")]
)
def test_loss_random(submission, rng, k):
    """Random logits, k = 1, 2 and 4: E * sum_i f_i * P_i with f_i from first choices."""
    logits = separated_logits(rng, 30, 6)
    logits[:, 0] += 1.0  # unbalanced, so that every term shows
    experts = oracle_route(logits, k)[1]
    want = oracle_loss(logits.double(), experts).float()
    got = submission.load_balancing_loss(logits, experts)
    assert_close(
        got,
        want,
        what="the loss",
        misconceptions={label: v.float() for label, v in loss_mistakes(logits, experts).items()},
        **TOL,
    )


def test_loss_gradient(submission, rng):
    """The loss is differentiable with respect to the logits (through P_i), as autograd computes it."""
    logits = separated_logits(rng, 16, 5, torch.float64)
    logits[:, 1] += 1.0
    experts = oracle_route(logits, 2)[1]
    assert_gradients_close(
        submission.load_balancing_loss,
        oracle_loss,
        (logits.clone().requires_grad_(True), experts),
        grad_output=torch.tensor(1.0, dtype=torch.float64),
        names=("logits",),
        rtol=1e-9,
        atol=1e-10,
        hint="the gradient reaches the logits through P_i, the mean of the softmax over all experts",
    )


# ---------------------------------------------------------------------------- the layer


def check_layer(submission, layer, top_k, capacity_factor, dtype=torch.float32):
    x, rw, w1, w2 = layer
    y, loss = submission.moe_forward(x, rw, w1, w2, top_k, capacity_factor)
    want_y, want_loss = oracle_moe(*(t.double() for t in layer), top_k, capacity_factor)
    tol = TOL if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-10}
    assert_close(
        y,
        want_y.to(dtype),
        what="y",
        misconceptions=moe_mistakes(*layer, top_k, capacity_factor, dtype),
        **tol,
    )
    logits = (x.double() @ rw.double().t()).to(dtype)
    experts = oracle_route(logits, top_k)[1]
    found = {k: v.to(dtype) for k, v in loss_mistakes(logits, experts).items()}
    assert_close(loss, want_loss.detach().to(dtype), what="the loss", misconceptions=found, **tol)


@pytest.mark.parametrize(
    "top_k, capacity_factor",
    [
        pytest.param(2, None, id="k=2-no-capacity"),
        pytest.param(1, None, id="k=1-no-capacity"),
        pytest.param(2, 1.0, id="k=2-factor-1.0"),
        pytest.param(2, 1.25, id="k=2-factor-1.25"),
        pytest.param(1, 1.5, id="k=1-factor-1.5"),
        pytest.param(3, 0.5, id="k=3-factor-0.5"),
    ],
)
def test_moe_random(submission, rng, top_k, capacity_factor):
    """Random layers (n = 24, d = 6, h = 8, E = 5) against the float64 loop, with and without capacity."""
    layer = random_layer(rng, 24, 6, 8, 5, skew=1.5)
    check_layer(submission, layer, top_k, capacity_factor)


def test_moe_shrunk(submission, seed):
    """Random layers of random sizes with capacity factor 1.0, shrunk to the smallest failing case."""

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        n_experts = sizes["experts"]
        layer = random_layer(rng, sizes["n"], sizes["d"], 4, n_experts, skew=1.0)
        check_layer(submission, layer, min(2, n_experts), 1.0)

    shrink(
        check, {"n": 16, "d": 4, "experts": 4}, seed=seed, minimum={"n": 1, "d": 2, "experts": 2}, budget=30
    )


def test_moe_tokens_that_lose_every_expert(submission, rng):
    """Capacity 1 per expert and every token preferring expert 0: most tokens get y = 0."""
    x, rw, w1, w2 = random_layer(rng, 8, 4, 6, 2, skew=50.0)  # capacity = ceil(0.25 * 8 * 1 / 2) = 1
    y, _ = submission.moe_forward(x, rw, w1, w2, 1, 0.25)
    want_y, _ = oracle_moe(x.double(), rw.double(), w1.double(), w2.double(), 1, 0.25)
    assert_close(
        y, want_y.float(), what="y", misconceptions=moe_mistakes(x, rw, w1, w2, 1, 0.25, torch.float32), **TOL
    )


def test_moe_float64(submission, rng):
    """float64 inputs give float64 outputs, to float64's precision."""
    layer = random_layer(rng, 16, 5, 7, 4, dtype=torch.float64, skew=1.0)
    check_layer(submission, layer, 2, 1.25, dtype=torch.float64)


@pytest.mark.parametrize(
    "capacity_factor", [pytest.param(None, id="no-capacity"), pytest.param(1.0, id="factor-1.0")]
)
def test_moe_gradients(submission, rng, capacity_factor):
    """Gradients of y and of the loss with respect to x, router_weight, w1 and w2, against autograd."""
    layer = random_layer(rng, 12, 4, 6, 4, dtype=torch.float64, skew=1.0)
    check_layer(submission, layer, 2, capacity_factor, dtype=torch.float64)  # the values first
    args = tuple(t.clone().requires_grad_(True) for t in layer)
    grad_y = torch.from_numpy(rng.standard_normal((12, 4)))
    grad_loss = torch.tensor(0.7, dtype=torch.float64)
    assert_gradients_close(
        submission.moe_forward,
        oracle_moe,
        (*args, 2, capacity_factor),
        grad_output=(grad_y, grad_loss),
        names=("x", "router_weight", "w1", "w2"),
        rtol=1e-8,
        atol=1e-9,
        hint="use differentiable tensor operations from the logits to y and the loss: no .detach(), "
        "no torch.no_grad, no round trip through Python numbers",
    )


def test_inputs_unchanged(submission, rng):
    """route, capacity_keep, load_balancing_loss and moe_forward leave their inputs as they were."""
    layer = random_layer(rng, 10, 4, 6, 3, skew=1.0)
    hint = "compute new tensors; never write into the tensors you were given"
    call_unchanged(
        submission.moe_forward,
        *layer,
        2,
        1.0,
        names=("x", "router_weight", "w1", "w2"),
        what="moe_forward",
        hint=hint,
    )
    logits = separated_logits(rng, 10, 3)
    call_unchanged(submission.route, logits, 2, names=("logits",), what="route", hint=hint)
    experts = oracle_route(logits, 2)[1]
    call_unchanged(
        submission.capacity_keep, experts, 3, 4, names=("experts",), what="capacity_keep", hint=hint
    )
    call_unchanged(
        submission.load_balancing_loss,
        logits,
        experts,
        names=("logits", "experts"),
        what="load_balancing_loss",
        hint=hint,
    )


# ---------------------------------------------------------------------------- performance

LOOP_HINT = (
    "a Python loop over tokens? loop over the experts only: gather each expert's tokens at once "
    "(index_select or a mask), and find the queue places with a cumulative sum"
)


@pytest.mark.performance
def test_ops_do_not_grow_with_tokens(perf):
    """The number of tensor ops of moe_forward (4 experts, k = 2, capacity factor 1.25) must not grow
    with the number of tokens (8, 32, 128)."""

    def make(rng, n):
        x, rw, w1, w2 = random_layer(rng, n, 8, 16, 4, skew=0.5)
        return Call("moe_forward", x, rw, w1, w2, 2, 1.25)

    perf.scaling("ops", make, hint=LOOP_HINT)
