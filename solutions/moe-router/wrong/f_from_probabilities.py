# expect: failed
# why: takes f_i from the router probabilities too, so the loss is E * sum_i P_i^2: the first
#   choices never enter it
# caught-by: test_loss_worked_example, test_loss_random, test_moe_random

import math

import torch


def route(logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k routing: (gates (n, k) in logits' dtype, experts (n, k) int64), best choice first."""
    n_experts = logits.shape[-1]
    if not 1 <= top_k <= n_experts:
        raise ValueError(f"top_k must be between 1 and the number of experts ({n_experts})")
    # a stable descending sort keeps equal logits in index order: lowest index first
    order = torch.sort(logits, dim=-1, descending=True, stable=True).indices
    experts = order[:, :top_k]
    gates = torch.softmax(logits.gather(-1, experts), dim=-1)
    return gates, experts


def capacity_keep(experts: torch.Tensor, n_experts: int, capacity: int | None) -> torch.Tensor:
    """Which assignments (n, k) fit in their expert's capacity: rank first, then token index."""
    if capacity is None:
        return torch.ones(experts.shape, dtype=torch.bool, device=experts.device)
    n, k = experts.shape
    one_hot = torch.nn.functional.one_hot(experts.t().reshape(-1), n_experts)  # (k * n, E), rank-major
    position = torch.cumsum(one_hot, dim=0) * one_hot  # 1-based place in its expert's queue
    kept = (position.sum(dim=-1) <= capacity).reshape(k, n).t()
    return kept


def load_balancing_loss(logits: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """Switch Transformer's auxiliary loss N * sum_i f_i * P_i, f_i from the first choices."""
    n_experts = logits.shape[-1]
    probs = torch.softmax(logits, dim=-1)  # over ALL experts
    p = probs.mean(dim=0)
    f = p
    return n_experts * (f * p).sum()


def moe_forward(
    x: torch.Tensor,
    router_weight: torch.Tensor,
    w1: torch.Tensor,
    w2: torch.Tensor,
    top_k: int = 2,
    capacity_factor: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A sparse MoE layer on tokens x (n, d): returns (y (n, d), load-balancing loss)."""
    n, _ = x.shape
    n_experts = router_weight.shape[0]
    logits = x @ router_weight.t()
    gates, experts = route(logits, top_k)
    capacity = None
    if capacity_factor is not None:
        capacity = math.ceil(capacity_factor * n * top_k / n_experts)
    kept = capacity_keep(experts, n_experts, capacity)
    weights = gates * kept.to(gates.dtype)  # a dropped assignment contributes nothing
    # combine[t, e]: the weight of expert e in token t's output (0 where not routed or dropped)
    combine = torch.zeros(n, n_experts, dtype=x.dtype, device=x.device).scatter_add(1, experts, weights)
    routed = torch.zeros(n, n_experts, dtype=torch.bool, device=x.device).scatter(1, experts, kept)
    y = torch.zeros_like(x)
    for e in range(n_experts):  # a loop over experts: a fixed number of ops whatever n is
        tokens = torch.nonzero(routed[:, e]).squeeze(-1)
        h = torch.relu(x.index_select(0, tokens) @ w1[e]) @ w2[e]
        y = y.index_add(0, tokens, h * combine.index_select(0, tokens)[:, e : e + 1])
    return y, load_balancing_loss(logits, experts)
