# expect: failed
# why: right advantages, but the returns are the discounted sums of rewards (bootstrapped with
#   last_value, as CleanRL's non-GAE branch computes them) instead of advantages + values
# caught-by: test_worked_example, test_returns_are_advantages_plus_values, test_random_rollouts
import torch

HALF = (torch.float16, torch.bfloat16)


def gae(rewards, values, dones, last_value, gamma=0.99, lam=0.95):
    out_dtype = rewards.dtype
    compute = torch.float32 if out_dtype in HALF else out_dtype
    r, v = rewards.to(compute), values.to(compute)
    not_done = 1.0 - dones.to(compute)
    lv = last_value.to(compute).reshape(v.shape[1:])
    next_v = torch.cat([v[1:], lv.unsqueeze(0)])
    deltas = r + gamma * next_v * not_done - v
    advantages = torch.empty_like(deltas)
    returns = torch.empty_like(deltas)
    running, ret = torch.zeros_like(deltas[0]), lv
    for t in range(deltas.shape[0] - 1, -1, -1):
        running = deltas[t] + gamma * lam * not_done[t] * running
        advantages[t] = running
        ret = r[t] + gamma * not_done[t] * ret  # the mistake: not the lambda-return A + V
        returns[t] = ret
    return advantages.to(out_dtype), returns.to(out_dtype)
