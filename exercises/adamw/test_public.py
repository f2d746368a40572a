"""Public tests: the worked example of README.md and other small cases you can check by hand.

Run them with `grader test adamw adamw.py`.
"""

import torch

from grader.testing import assert_close, call_unchanged, expect

# the worked example: lr = 0.1, betas = (0.9, 0.999), eps = 1e-8, weight_decay = 0.1
HP = {"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1}
TOL = {"rtol": 1e-6, "atol": 1e-6}
EPS_UNCORRECTED = (
    "eps added to sqrt(v) before the bias correction? Add it after: sqrt(v) / sqrt(1 - beta2^t) + eps"
)
LOST_PRECISION = (
    "float64 parameters lost precision: a float32 tensor in the computation (torch.tensor(x) is float32)? "
    "keep the hyperparameters and bias corrections as Python floats (math.sqrt)"
)


def t(*values):
    return torch.tensor(values, dtype=torch.float32)


def test_init_state(submission):
    """init_state([p1, p2]): step 0, and m and v zeros of each parameter's shape and dtype."""
    params = [torch.ones(2, 3), torch.ones(4, dtype=torch.float64)]
    state = submission.init_state(params)
    expect(isinstance(state, dict), "init_state must return a dict with the keys 'step', 'm' and 'v'")
    expect(state.get("step") == 0, "init_state's step must be 0", detail=f"got {state.get('step')!r}")
    zeros = [torch.zeros(2, 3), torch.zeros(4, dtype=torch.float64)]
    assert_close(state.get("m"), zeros, what="init_state(params)['m']")
    assert_close(state.get("v"), zeros, what="init_state(params)['v']")


def test_worked_example_first_step(submission):
    """p = [1, -2], g = [0.5, 0.5], first step: decay to [0.99, -1.98], then move each by 0.1."""
    p = [t(1.0, -2.0)]
    state = {"step": 0, "m": [t(0.0, 0.0)], "v": [t(0.0, 0.0)]}
    new_p, new_state = submission.adamw_step(p, [t(0.5, 0.5)], state, **HP)
    expect(
        bool(torch.isfinite(new_p[0]).all()),
        "the new parameters have NaN or inf values",
        detail=f"got {new_p[0]}",
        hint="at the first step state['step'] is 0: count steps from 1, t = state['step'] + 1, "
        "so that 1 - beta^t is not 0",
    )
    assert_close(
        new_p,
        [t(0.89, -2.08)],
        what="the parameters after the first step",
        misconceptions={
            "weight decay added to the gradient (L2, as torch.optim.Adam does)? AdamW decays the "
            "parameter itself, p = p - lr * weight_decay * p, and leaves the gradient alone": [t(0.9, -2.1)],
            "no bias correction? Divide m by 1 - beta1^t and sqrt(v) by sqrt(1 - beta2^t)": [
                t(0.6737724, -2.2962276)
            ],
            "weight decay not multiplied by lr? The decay is p = p - lr * weight_decay * p": [t(0.8, -1.9)],
            "weight decay multiplied by lr twice? The decay is p = p - lr * weight_decay * p": [
                t(0.899, -2.098)
            ],
            "weight decay applied after the Adam update? Decay the parameter first (p * (1 - lr * "
            "weight_decay)), then subtract the Adam update from the decayed parameter": [t(0.891, -2.079)],
            "bias correction with t one step ahead? The first step uses t = state['step'] + 1 = 1": [
                t(0.9155863, -2.0544137)
            ],
        },
        **TOL,
    )
    expect(
        new_state.get("step") == 1,
        "after the first step the state's step must be 1",
        detail=f"got {new_state.get('step')!r}",
    )
    assert_close(new_state.get("m"), [t(0.05, 0.05)], what="m after the first step", **TOL)
    assert_close(
        new_state.get("v"), [t(0.00025, 0.00025)], what="v after the first step", rtol=1e-6, atol=1e-9
    )


def test_worked_example_second_step(submission):
    """The second step of the worked example, from the state the first left: g = [-1, 0.5], t = 2."""
    p = [t(0.89, -2.08)]
    state = {"step": 1, "m": [t(0.05, 0.05)], "v": [t(0.00025, 0.00025)]}
    new_p, new_state = submission.adamw_step(p, [t(-1.0, 0.5)], state, **HP)
    assert_close(
        new_p,
        [t(0.9177104, -2.1592)],
        what="the parameters after the second step",
        misconceptions={
            "bias correction one step behind? This step uses t = state['step'] + 1": [
                t(0.9302984, -2.1935839)
            ],
        },
        **TOL,
    )
    expect(
        new_state.get("step") == 2,
        "after the second step the state's step must be 2",
        detail=f"got {new_state.get('step')!r}",
    )
    assert_close(new_state.get("m"), [t(-0.055, 0.095)], what="m after the second step", **TOL)
    assert_close(
        new_state.get("v"), [t(0.00124975, 0.00049975)], what="v after the second step", rtol=1e-6, atol=1e-9
    )


def test_worked_example_float64(submission):
    """The first step of the worked example in float64, held to float64's tolerance: eps moves each entry
    by 2e-9, to [0.890000002, -2.079999998]."""
    p = [torch.tensor([1.0, -2.0], dtype=torch.float64)]
    zeros = torch.zeros(2, dtype=torch.float64)
    state = {"step": 0, "m": [zeros], "v": [zeros]}
    new_p, _ = submission.adamw_step(p, [torch.tensor([0.5, 0.5], dtype=torch.float64)], state, **HP)
    expect(
        not all(
            isinstance(x, torch.Tensor) and x.dtype == torch.float64 and torch.equal(x, x.float().double())
            for x in new_p
        ),
        "the float64 parameters after the first step hold only float32 values",
        detail=f"got {new_p}",
        hint=LOST_PRECISION,
    )
    assert_close(
        new_p,
        [torch.tensor([0.890000002, -2.079999998], dtype=torch.float64)],
        what="the float64 parameters after the first step",
        rtol=1e-9,
        atol=1e-12,
        misconceptions={
            EPS_UNCORRECTED: [torch.tensor([0.8900000632455132, -2.079999936754487], dtype=torch.float64)],
            LOST_PRECISION: [torch.tensor([0.8899999956039383, -2.080000004396062], dtype=torch.float64)],
        },
    )


def test_no_weight_decay_first_step(submission):
    """weight_decay = 0: the first step moves every entry by lr against the sign of its gradient, and an
    entry with a zero gradient does not move (0 / (0 + eps) = 0)."""
    p = [t(1.0, 1.0, 1.0)]
    state = {"step": 0, "m": [t(0.0, 0.0, 0.0)], "v": [t(0.0, 0.0, 0.0)]}
    new_p, _ = submission.adamw_step(p, [t(3.0, -0.2, 0.0)], state, lr=0.01, weight_decay=0.0)
    assert_close(new_p, [t(0.99, 1.01, 1.0)], what="the parameters after the first step", **TOL)


def test_several_parameters(submission):
    """Two parameters of different shapes in one call: each moves with its own gradient and moments,
    and the results come back in the order given."""
    params = [torch.full((2, 2), 2.0), t(-1.0, 0.0, 1.0)]
    grads = [torch.tensor([[1.0, -1.0], [0.0, 2.0]]), t(0.5, -0.5, 0.0)]
    state = {"step": 0, "m": [torch.zeros(2, 2), torch.zeros(3)], "v": [torch.zeros(2, 2), torch.zeros(3)]}
    new_p, new_state = submission.adamw_step(params, grads, state, lr=0.1, weight_decay=0.5)
    # decay first (factor 1 - 0.1 * 0.5 = 0.95), then -0.1 * sign(g) at the first step
    assert_close(
        new_p,
        [torch.tensor([[1.8, 2.0], [1.9, 1.8]]), t(-1.05, 0.1, 0.95)],
        what="the two parameters after the first step",
        **TOL,
    )
    assert_close(new_state.get("m"), [0.1 * grads[0], 0.1 * grads[1]], what="m after the first step", **TOL)


def test_inputs_unchanged(submission):
    """adamw_step leaves params, grads and state as they were (it returns new ones)."""
    p = [t(1.0, -2.0)]
    state = {"step": 0, "m": [t(0.0, 0.0)], "v": [t(0.0, 0.0)]}
    new_p, _ = call_unchanged(
        submission.adamw_step,
        p,
        [t(0.5, 0.5)],
        state,
        names=("params", "grads", "state"),
        what="adamw_step",
        hint="return new tensors and a new state dict: p = p * (1 - lr * weight_decay), m = beta1 * m + ..., "
        "never p.mul_(...), m.lerp_(...), p -= ... or state['step'] += 1 on what you were given",
        **HP,
    )
    assert_close(new_p, [t(0.89, -2.08)], what="the parameters after the first step", **TOL)
