# expect: failed
# why: updates the parameters and the moments in place, as torch.optim.AdamW does (p.mul_, m.lerp_,
#   v.mul_().addcmul_(), p.addcdiv_()): the numbers are right, but the caller's params and state
#   are overwritten, where the exercise's contract is a function that returns new ones
# caught-by: test_inputs_unchanged
"""AdamW written like torch's own loop, in place."""

import math

import torch


def init_state(params: list[torch.Tensor]) -> dict:
    return {"step": 0, "m": [torch.zeros_like(p) for p in params], "v": [torch.zeros_like(p) for p in params]}


def adamw_step(params, grads, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    beta1, beta2 = betas
    state["step"] += 1
    t = state["step"]
    step_size = lr / (1 - beta1**t)
    bias_correction2_sqrt = math.sqrt(1 - beta2**t)
    for p, g, m, v in zip(params, grads, state["m"], state["v"], strict=True):
        p.mul_(1 - lr * weight_decay)
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (v.sqrt() / bias_correction2_sqrt).add_(eps)
        p.addcdiv_(m, denom, value=-step_size)
    return params, state
