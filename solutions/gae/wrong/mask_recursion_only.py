# expect: failed
# why: cuts the recursion at an episode end but still bootstraps delta_t from V_{t+1}, the value of
#   the first state of the next episode
# caught-by: test_worked_example, test_random_rollouts, test_lambda_zero_is_one_step_td
import torch

HALF = (torch.float16, torch.bfloat16)


def gae(rewards, values, dones, last_value, gamma=0.99, lam=0.95):
    out_dtype = rewards.dtype
    compute = torch.float32 if out_dtype in HALF else out_dtype
    r, v = rewards.to(compute), values.to(compute)
    not_done = 1.0 - dones.to(compute)
    next_v = torch.cat([v[1:], last_value.to(compute).reshape(1, *v.shape[1:])])
    deltas = r + gamma * next_v - v  # the mistake: the bootstrap is not cut
    advantages = torch.empty_like(deltas)
    running = torch.zeros_like(deltas[0])
    for t in range(deltas.shape[0] - 1, -1, -1):
        running = deltas[t] + gamma * lam * not_done[t] * running
        advantages[t] = running
    return advantages.to(out_dtype), (advantages + v).to(out_dtype)
