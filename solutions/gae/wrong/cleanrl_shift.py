# expect: failed
# why: copies CleanRL's ppo.py loop, whose dones[t] means "s_t starts a new episode": step t is
#   masked with 1 - dones[t + 1] (and dones[T - 1] at the last step), one step off the convention
#   asked for, where dones[t] = 1 means the episode ended at step t
# caught-by: test_worked_example, test_random_rollouts
import torch

HALF = (torch.float16, torch.bfloat16)


def gae(rewards, values, dones, last_value, gamma=0.99, lam=0.95):
    out_dtype = rewards.dtype
    compute = torch.float32 if out_dtype in HALF else out_dtype
    r, v, d = rewards.to(compute), values.to(compute), dones.to(compute)
    num_steps = r.shape[0]
    advantages = torch.empty_like(r)
    lastgaelam = torch.zeros_like(r[0])
    for t in reversed(range(num_steps)):
        if t == num_steps - 1:
            nextnonterminal = 1.0 - d[-1]
            nextvalues = last_value.to(compute)
        else:
            nextnonterminal = 1.0 - d[t + 1]  # the mistake: CleanRL's flag, not ours
            nextvalues = v[t + 1]
        delta = r[t] + gamma * nextvalues * nextnonterminal - v[t]
        lastgaelam = delta + gamma * lam * nextnonterminal * lastgaelam
        advantages[t] = lastgaelam
    return advantages.to(out_dtype), (advantages + v).to(out_dtype)
