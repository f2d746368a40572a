# expect: failed
# why: counts steps from 0: the bias corrections use the step count before this step, so the first
#   step divides by 1 - beta^0 = 0 (NaN), and every later one is one step behind
# caught-by: test_first_step, test_matches_torch_adamw, test_resume_from_state, test_worked_example_first_step
"""AdamW with the step counted from 0."""

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
    bias_correction1 = 1 - beta1 ** state["step"]
    bias_correction2 = 1 - beta2 ** state["step"]
    step_size = lr / bias_correction1
    bias_correction2_sqrt = math.sqrt(bias_correction2)

    new_params, new_m, new_v = [], [], []
    for p, g, m, v in zip(params, grads, state["m"], state["v"], strict=True):
        p = p * (1 - lr * weight_decay)  # decoupled weight decay, before the Adam update
        m = beta1 * m + (1 - beta1) * g  # new tensors: the caller's m and v stay as they were
        v = beta2 * v + (1 - beta2) * g * g
        denom = v.sqrt() / bias_correction2_sqrt + eps  # eps outside the root, after bias correction
        p = p - step_size * m / denom
        new_params.append(p)
        new_m.append(m)
        new_v.append(v)
    return new_params, {"step": t, "m": new_m, "v": new_v}
