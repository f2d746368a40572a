# expect: failed
# why: computes k3 as written, exp(log r) - 1 - log r: near r = 1 exp(log r) rounds to a number near 1,
#   the subtraction of 1 cancels its digits, and the rounding error makes k3 negative (in float32 at
#   |log r| ~ 1e-8, in bfloat16 already at 1e-3)
# caught-by: test_k3_never_negative
import torch


def kl_estimate(logprobs, ref_logprobs, estimator="k1"):
    if estimator not in ("k1", "k2", "k3"):
        raise ValueError(f"unknown estimator {estimator!r}")
    log_ratio = ref_logprobs - logprobs
    if estimator == "k1":
        return -log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio.square()
    return torch.exp(log_ratio) - 1 - log_ratio


def kl_penalty_rewards(scores, logprobs, ref_logprobs, response_mask, beta=0.05, estimator="k1"):
    kl = kl_estimate(logprobs, ref_logprobs, estimator)
    mask = response_mask.to(torch.bool)
    rewards = torch.where(mask, -beta * kl, torch.zeros((), dtype=kl.dtype))
    positions = torch.arange(mask.shape[-1])
    last = torch.where(mask, positions, -1).amax(dim=-1, keepdim=True)
    return torch.where(positions == last, rewards + scores.to(rewards.dtype).unsqueeze(-1), rewards)
