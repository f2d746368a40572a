# expect: too_slow
# why: correct and loop-free, but builds a (T, T, N) matrix of discount factors and multiplies the
#   deltas by it: memory (and work) quadratic in the rollout's length
# caught-by: test_memory_grows_linearly
import torch

HALF = (torch.float16, torch.bfloat16)


def gae(rewards, values, dones, last_value, gamma=0.99, lam=0.95):
    out_dtype = rewards.dtype
    compute = torch.float32 if out_dtype in HALF else out_dtype
    r, v = rewards.to(compute), values.to(compute)
    ended = dones.to(compute)
    next_v = torch.cat([v[1:], last_value.to(compute).reshape(1, *v.shape[1:])])
    deltas = r + gamma * next_v * (1.0 - ended) - v
    steps, shape = deltas.shape[0], deltas.shape
    d2 = deltas.reshape(steps, -1)  # (T, N)
    # episode ends among steps 0 .. k-1, for every k
    before = torch.cumsum(torch.cat([torch.zeros_like(ended[:1]), ended[:-1]]), dim=0).reshape(steps, -1)
    # alive[t, k, n]: no episode end in steps t .. k-1, so delta_k belongs to A_t's episode
    alive = (before[None, :, :] == before[:, None, :]).to(compute)  # (T, T, N)
    idx = torch.arange(steps)
    lag = (idx[None, :] - idx[:, None]).to(compute)  # k - t
    weights = ((gamma * lam) ** lag.clamp_min(0) * (lag >= 0).to(compute))[:, :, None] * alive
    advantages = (weights * d2[None, :, :]).sum(dim=1).reshape(shape)
    return advantages.to(out_dtype), (advantages + v).to(out_dtype)
