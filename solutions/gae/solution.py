"""Generalised advantage estimation: the reference solution."""

import torch

HALF = (torch.float16, torch.bfloat16)


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_value: torch.Tensor,
    gamma: float = 0.99,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns) of a time-major rollout, one backward pass over the steps."""
    out_dtype = rewards.dtype
    compute = torch.float32 if out_dtype in HALF else out_dtype
    r = rewards.to(compute)
    v = values.to(compute)
    # dones[t] = 1: the episode ended at step t, so nothing after step t is carried back into it
    not_done = 1.0 - dones.to(compute)
    # the value of the state after each step: V_{t+1}, and last_value after the final step
    next_v = torch.cat([v[1:], last_value.to(compute).reshape(1, *v.shape[1:])])
    deltas = r + gamma * next_v * not_done - v  # all the one-step TD errors at once
    carry = gamma * lam * not_done  # how much of A_{t+1} flows back into A_t
    advantages = torch.empty_like(deltas)
    running = torch.zeros_like(deltas[0])  # A_T = 0: nothing after the last step
    for t in range(deltas.shape[0] - 1, -1, -1):
        running = deltas[t] + carry[t] * running
        advantages[t] = running
    returns = advantages + v
    return advantages.to(out_dtype), returns.to(out_dtype)
