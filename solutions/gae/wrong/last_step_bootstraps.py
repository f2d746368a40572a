# expect: failed
# why: masks every step but the last, which always bootstraps from last_value: an episode that
#   ends at step T - 1 is credited with the value of the next episode's first state
# caught-by: test_episode_ends_at_last_step, test_random_rollouts
import torch

HALF = (torch.float16, torch.bfloat16)


def gae(rewards, values, dones, last_value, gamma=0.99, lam=0.95):
    out_dtype = rewards.dtype
    compute = torch.float32 if out_dtype in HALF else out_dtype
    r, v = rewards.to(compute), values.to(compute)
    not_done = 1.0 - dones.to(compute)
    advantages = torch.empty_like(r)
    running = torch.zeros_like(r[0])
    for t in range(r.shape[0] - 1, -1, -1):
        if t == r.shape[0] - 1:
            # the mistake: "last_value is the bootstrap", whatever dones[T - 1] says
            delta = r[t] + gamma * last_value.to(compute) - v[t]
        else:
            delta = r[t] + gamma * v[t + 1] * not_done[t] - v[t]
        running = delta + gamma * lam * not_done[t] * running
        advantages[t] = running
    return advantages.to(out_dtype), (advantages + v).to(out_dtype)
