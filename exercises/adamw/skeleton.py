"""The AdamW optimiser: one step, as a function. Read README.md first: it states every convention.

Fill in `init_state` and `adamw_step` below. The tests compare your steps with
torch.optim.AdamW's, so follow its order of operations exactly (README.md, "The algorithm").
"""

import torch


def init_state(params: list[torch.Tensor]) -> dict:
    """The optimiser state before the first step.

    Returns {"step": 0, "m": [...], "v": [...]}: "step" is the number of steps taken so far (a
    Python int, 0 here); "m" and "v" hold, for every parameter in the order given, a tensor of
    zeros with that parameter's shape and dtype (the first and second moment estimates).
    """
    raise NotImplementedError("init_state: step 0 and zero moments, one per parameter")


def adamw_step(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    state: dict,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
) -> tuple[list[torch.Tensor], dict]:
    """One AdamW step on every parameter, exactly as torch.optim.AdamW computes it.

    params[i] and grads[i] have the same shape and dtype; state is {"step": int, "m": [...],
    "v": [...]} as init_state makes it (or as a previous call returned it). With t = state["step"] + 1
    (steps are counted from 1), for every parameter p with gradient g, moments m and v:

        p     = p * (1 - lr * weight_decay)              # decoupled weight decay, first
        m     = beta1 * m + (1 - beta1) * g
        v     = beta2 * v + (1 - beta2) * g * g
        denom = sqrt(v) / sqrt(1 - beta2**t) + eps       # eps outside the root, after correction
        p     = p - lr / (1 - beta1**t) * m / denom

    Returns (new_params, new_state): new_params a list of tensors in the order of params, each with
    its parameter's shape and dtype; new_state a new dict {"step": t, "m": [...], "v": [...]}
    holding the updated moments. Compute in the parameters' dtype.

    Leave params, grads and state as they were: no in-place operations on the tensors given
    (p.mul_, m.lerp_, p -= ...) and no writes into the state dict given (state["step"] += 1).
    Not allowed: torch.optim (its Adam and AdamW would do the whole exercise).
    """
    raise NotImplementedError("adamw_step: decay, update the moments, bias-correct, step")
