# expect: failed
# why: ignores dones altogether, bootstrapping V_{t+1} and carrying A_{t+1} across episode ends: the
#   last step of an episode is credited with the rewards and values of the next one
# caught-by: test_worked_example, test_random_rollouts, test_several_ends_in_a_row
import torch

HALF = (torch.float16, torch.bfloat16)


def gae(rewards, values, dones, last_value, gamma=0.99, lam=0.95):
    out_dtype = rewards.dtype
    compute = torch.float32 if out_dtype in HALF else out_dtype
    r, v = rewards.to(compute), values.to(compute)
    next_v = torch.cat([v[1:], last_value.to(compute).reshape(1, *v.shape[1:])])
    deltas = r + gamma * next_v - v  # the mistake: no (1 - dones[t]) anywhere
    advantages = torch.empty_like(deltas)
    running = torch.zeros_like(deltas[0])
    for t in range(deltas.shape[0] - 1, -1, -1):
        running = deltas[t] + gamma * lam * running
        advantages[t] = running
    return advantages.to(out_dtype), (advantages + v).to(out_dtype)
