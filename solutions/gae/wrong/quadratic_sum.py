# expect: too_slow
# why: correct, but computes every A_t afresh as the discounted sum of the deltas after it,
#   A_t = sum_l (gamma lam)^l delta_{t+l} (cut at episode ends): T^2 / 2 steps of tensor work
#   instead of one backward pass
# caught-by: test_ops_grow_linearly
import torch

HALF = (torch.float16, torch.bfloat16)


def gae(rewards, values, dones, last_value, gamma=0.99, lam=0.95):
    out_dtype = rewards.dtype
    compute = torch.float32 if out_dtype in HALF else out_dtype
    r, v = rewards.to(compute), values.to(compute)
    not_done = 1.0 - dones.to(compute)
    next_v = torch.cat([v[1:], last_value.to(compute).reshape(1, *v.shape[1:])])
    deltas = r + gamma * next_v * not_done - v
    steps = deltas.shape[0]
    advantages = torch.empty_like(deltas)
    for t in range(steps):
        total = torch.zeros_like(deltas[0])
        weight = torch.ones_like(deltas[0])
        for k in range(t, steps):
            total = total + weight * deltas[k]
            weight = weight * (gamma * lam) * not_done[k]  # zero after an episode end
        advantages[t] = total
    return advantages.to(out_dtype), (advantages + v).to(out_dtype)
