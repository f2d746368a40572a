"""Mixture-of-experts routing: top-k gates, expert capacity, dispatch and combine, and the Switch
Transformer load-balancing loss.

Fill in the four functions below. Read README.md first: it explains every convention used here.
"""

import math  # noqa: F401  (math.ceil gives the capacity)

import torch


def route(logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k routing, as Mixtral does it.

    logits: (n, E) router logits. Returns (gates, experts), both (n, top_k):
      experts[t] = the top_k experts with the largest logits[t], largest first (column 0 is the
                   first choice); equal logits are ordered by expert index, lowest first
                   (torch.topk promises no order for ties: a stable descending sort does).
                   dtype torch.int64.
      gates[t]   = softmax over the top_k selected logits only (they sum to 1; with top_k = 1
                   every gate is 1.0), in the dtype of logits, in the same order as experts.

    top_k < 1 or top_k > E raises ValueError. logits is left as it was.
    """
    raise NotImplementedError("route: top-k of the logits, softmax over the selected k")


def capacity_keep(experts: torch.Tensor, n_experts: int, capacity: int | None) -> torch.Tensor:
    """Which assignments fit in their expert's capacity.

    experts: (n, k) int64, as route returns it (column r = every token's rank-r choice).
    Returns a torch.bool tensor (n, k): True where the assignment is kept.

    Each expert takes its assignments in this order: by choice rank first (every first choice
    before any second choice), then by token index; it keeps the first `capacity` of them and
    drops the rest. capacity=None keeps everything; capacity=0 keeps nothing.

    No Python loop over tokens (a cumulative sum over the rank-major assignments does it).
    """
    raise NotImplementedError("capacity_keep: each expert keeps its first `capacity` assignments")


def load_balancing_loss(logits: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """Switch Transformer's load-balancing loss: E * sum_i f_i * P_i.

    logits: (n, E); experts: (n, k) as route returns it.
      f_i = fraction of the n tokens whose FIRST choice (experts[:, 0]) is expert i
      P_i = mean over the n tokens of softmax(logits[t])_i, the softmax over ALL E experts

    Returns a 0-dim tensor in the dtype of logits, differentiable with respect to logits
    (through P_i; f_i is a count).
    """
    raise NotImplementedError("load_balancing_loss: E * sum_i f_i * P_i")


def moe_forward(
    x: torch.Tensor,
    router_weight: torch.Tensor,
    w1: torch.Tensor,
    w2: torch.Tensor,
    top_k: int = 2,
    capacity_factor: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A sparse mixture-of-experts layer. Returns (y, loss).

    x: (n, d) tokens; router_weight: (E, d); w1: (E, d, h); w2: (E, h, d); one dtype
    (float32 or float64).

      logits        = x @ router_weight.T                                   (n, E)
      gates, experts = route(logits, top_k)
      capacity      = math.ceil(capacity_factor * n * top_k / E), or None when capacity_factor is None
      kept          = capacity_keep(experts, E, capacity)
      expert_e(v)   = relu(v @ w1[e]) @ w2[e]
      y[t]          = sum over the kept ranks r of gates[t, r] * expert_{experts[t, r]}(x[t])
                      (dropped assignments contribute 0; the kept gates are NOT renormalised)
      loss          = load_balancing_loss(logits, experts)      (before capacity drops)

    y has x's shape and dtype. Gradients must flow from y and loss to x, router_weight, w1 and
    w2. Inputs are left as they were. A Python loop over the E experts is fine; a loop over
    tokens is not: the number of tensor operations must not grow with n.
    """
    raise NotImplementedError("moe_forward: route, apply capacity, dispatch to the experts, combine")
