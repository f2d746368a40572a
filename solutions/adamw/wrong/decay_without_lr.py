# expect: failed
# why: the weight decay is not scaled by the learning rate: p = p - weight_decay * p, as if
#   weight_decay were already the per-step decay (it is lr * weight_decay in torch.optim.AdamW)
# caught-by: test_matches_torch_adamw, test_zero_gradients, test_worked_example_first_step
"""AdamW with the decay not multiplied by lr."""

import math

import torch


def init_state(params: list[torch.Tensor]) -> dict:
    """The state before the first step: no step taken, both moments zero."""
    return {
        "step": 0,
        "m": [torch.zeros_like(p) for p in params],
        "v": [torch.zeros_like(p) for p in params],
    }


def adamw_step(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    state: dict,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
) -> tuple[list[torch.Tensor], dict]:
    """One AdamW step on every parameter; returns (new_params, new_state), inputs left unchanged."""
    beta1, beta2 = betas
    t = state["step"] + 1  # steps are counted from 1: the first step uses t = 1
    bias_correction1 = 1 - beta1**t
    bias_correction2 = 1 - beta2**t
    step_size = lr / bias_correction1
    bias_correction2_sqrt = math.sqrt(bias_correction2)

    new_params, new_m, new_v = [], [], []
    for p, g, m, v in zip(params, grads, state["m"], state["v"], strict=True):
        p = p * (1 - weight_decay)
        m = beta1 * m + (1 - beta1) * g  # new tensors: the caller's m and v stay as they were
        v = beta2 * v + (1 - beta2) * g * g
        denom = v.sqrt() / bias_correction2_sqrt + eps  # eps outside the root, after bias correction
        p = p - step_size * m / denom
        new_params.append(p)
        new_m.append(m)
        new_v.append(v)
    return new_params, {"step": t, "m": new_m, "v": new_v}
