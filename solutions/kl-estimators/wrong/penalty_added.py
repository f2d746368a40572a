# expect: failed
# why: adds beta * kl to the rewards instead of subtracting it, which rewards the policy for drifting
#   away from the reference
# caught-by: test_penalty_rewards, test_penalty_worked_example
import torch


def kl_estimate(logprobs, ref_logprobs, estimator="k1"):
    if estimator not in ("k1", "k2", "k3"):
        raise ValueError(f"unknown estimator {estimator!r}")
    log_ratio = ref_logprobs - logprobs
    if estimator == "k1":
        return -log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio.square()
    return (torch.expm1(log_ratio) - log_ratio).clamp_min(0.0)


def kl_penalty_rewards(scores, logprobs, ref_logprobs, response_mask, beta=0.05, estimator="k1"):
    kl = kl_estimate(logprobs, ref_logprobs, estimator)
    mask = response_mask.to(torch.bool)
    rewards = torch.where(mask, beta * kl, torch.zeros((), dtype=kl.dtype))
    positions = torch.arange(mask.shape[-1])
    last = torch.where(mask, positions, -1).amax(dim=-1, keepdim=True)
    return torch.where(positions == last, rewards + scores.to(rewards.dtype).unsqueeze(-1), rewards)
