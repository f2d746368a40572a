"""KL estimators: the reference solution."""

import torch

ESTIMATORS = ("k1", "k2", "k3")


def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-sample estimate of KL(q || p_ref) from log q(x) and log p_ref(x) of samples x ~ q."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}: use one of {', '.join(ESTIMATORS)}")
    log_ratio = ref_logprobs - logprobs  # log r = log p_ref(x) - log q(x)
    if estimator == "k1":
        return -log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio.square()
    # (r - 1) - log r, with r - 1 computed as expm1(log r): no cancellation near r = 1, and the
    # rounded expm1(log r) is never below log r, so the difference is >= 0; the clamp guards any
    # library whose expm1 is not that accurate
    return (torch.expm1(log_ratio) - log_ratio).clamp_min(0.0)


def kl_penalty_rewards(
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    response_mask: torch.Tensor,
    beta: float = 0.05,
    estimator: str = "k1",
) -> torch.Tensor:
    """Per-token rewards: -beta * kl on the response tokens, 0 elsewhere, plus each row's score at
    its last response token."""
    kl = kl_estimate(logprobs, ref_logprobs, estimator)  # (B, T)
    mask = response_mask.to(torch.bool)
    # select, never multiply: outside the mask kl may be inf (exp overflow), and inf * 0 is NaN
    rewards = torch.where(mask, -beta * kl, torch.zeros((), dtype=kl.dtype))
    positions = torch.arange(mask.shape[-1], device=mask.device)
    last = torch.where(mask, positions, -1).amax(dim=-1, keepdim=True)  # (B, 1): the last response token
    at_last = positions == last  # (B, T), one True per row
    return torch.where(at_last, rewards + scores.to(rewards.dtype).unsqueeze(-1), rewards)
