# expect: failed
# why: adds the score at position T - 1, the end of the padded row, instead of the response's last
#   token: right only for the rows without padding
# caught-by: test_penalty_rewards, test_one_token_responses, test_penalty_worked_example
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
    rewards = torch.where(response_mask, -beta * kl, torch.zeros((), dtype=kl.dtype))
    rewards[:, -1] = rewards[:, -1] + scores.to(rewards.dtype)
    return rewards
