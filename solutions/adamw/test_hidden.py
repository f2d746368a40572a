"""Hidden tests of adamw: 20-step trajectories against torch.optim.AdamW (the oracle) in float32 and
float64 for several hyperparameter settings, the first step, a resumed state, zero gradients, tiny
gradients where eps decides, random shapes, and inputs left as they were."""

import math

import numpy as np
import pytest
import torch

from grader.testing import GradingFailure, assert_close, call_unchanged, compare, expect, shrink

L2 = (
    "weight decay added to the gradient (L2, as torch.optim.Adam does)? AdamW decays the parameter "
    "itself, p = p - lr * weight_decay * p, and leaves the gradient alone"
)
NO_BIAS = "no bias correction? Divide m by 1 - beta1^t and sqrt(v) by sqrt(1 - beta2^t)"
EPS_INSIDE = "eps inside the square root? It goes outside: sqrt(v) / sqrt(1 - beta2^t) + eps"
EPS_UNCORRECTED = (
    "eps added to sqrt(v) before the bias correction? Add it after: sqrt(v) / sqrt(1 - beta2^t) + eps"
)
LOST_PRECISION = (
    "float64 parameters lost precision: a float32 tensor in the computation (torch.tensor(x) is float32)? "
    "keep the hyperparameters and bias corrections as Python floats (math.sqrt)"
)
DECAY_NO_LR = "weight decay not multiplied by lr? The decay is p = p - lr * weight_decay * p"
DECAY_LR_TWICE = "weight decay multiplied by lr twice? The decay is p = p - lr * weight_decay * p"
DECAY_AFTER = (
    "weight decay applied after the Adam update? Decay the parameter first (p * (1 - lr * weight_decay)), "
    "then subtract the Adam update from the decayed parameter"
)
STEP_TWO_AHEAD = "bias correction with t one step ahead? The first step uses t = state['step'] + 1 = 1"
STEP_BEHIND = "bias correction one step behind? This step uses t = state['step'] + 1"
STEP_STUCK = "the step count was not advanced? The returned state's step is state['step'] + 1"
NOT_FINITE = (
    "NaN or inf in the new parameters: at the first step state['step'] is 0, and 1 - beta^0 = 0 "
    "divides by zero; the first step uses t = state['step'] + 1 = 1"
)
MUTATED = (
    "return new tensors and a new state dict: p = p * (1 - lr * weight_decay), m = beta1 * m + ..., "
    "never p.mul_(...), m.lerp_(...), p -= ... or state['step'] += 1 on what you were given"
)

SHAPES = [(5,), (3, 4), (2, 3, 2)]  # several parameters of different shapes in one call
STEPS = 20


def tol(dtype):
    """The tolerance against torch.optim.AdamW, as the lesson states it."""
    return {"rtol": 1e-6, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-9, "atol": 1e-12}


def make(rng, shape, dtype, scale=1.0):
    return torch.from_numpy(rng.standard_normal(shape) * scale).to(dtype)


def torch_adamw(params, grads_seq, hp, state=None):
    """The oracle: torch.optim.AdamW (single-tensor path), from `state` or from scratch. Returns the
    parameters after every step and the final state in the exercise's layout."""
    ps = [p.clone().requires_grad_() for p in params]
    opt = torch.optim.AdamW(
        ps,
        lr=hp["lr"],
        betas=hp["betas"],
        eps=hp["eps"],
        weight_decay=hp["weight_decay"],
        foreach=False,
        fused=False,
    )
    if state is not None:
        for p, m, v in zip(ps, state["m"], state["v"], strict=True):
            opt.state[p] = {
                "step": torch.tensor(float(state["step"])),
                "exp_avg": m.clone(),
                "exp_avg_sq": v.clone(),
            }
    trajectory = []
    for grads in grads_seq:
        for p, g in zip(ps, grads, strict=True):
            p.grad = g.clone()
        opt.step()
        trajectory.append([p.detach().clone() for p in ps])
    final = {
        "step": int(opt.state[ps[0]]["step"].item()),
        "m": [opt.state[p]["exp_avg"].clone() for p in ps],
        "v": [opt.state[p]["exp_avg_sq"].clone() for p in ps],
    }
    return trajectory, final


def f32(x):
    """A Python float as float32 rounds it (what torch.tensor(x) holds)."""
    return float(torch.tensor(x, dtype=torch.float32))


# the scalars of a float64 step that a float32 tensor can round (torch.tensor(1 - beta2**t) and the
# like), one way of writing it each: their outputs bound how far such a step can drift
F32_SCALARS = [{"sqrt-bc2"}, {"bc1"}, {"step-size"}, {"lr"}, {"lr", "bc1", "step-size", "sqrt-bc2"}]


def variant_step(params, grads, state, hp, mistake, rounded=frozenset()):
    """One step of a likely mistake (what a submission that made it returns); `rounded` names the
    scalars of a float64 step held in float32 (mistake "f32")."""
    if "all" in rounded:
        single = [[x.float() for x in xs] for xs in (params, grads, state["m"], state["v"])]
        st = {"step": state["step"], "m": single[2], "v": single[3]}
        out_p, out_st = variant_step(single[0], single[1], st, hp, None)
        dtypes = [p.dtype for p in params]
        return [p.to(d) for p, d in zip(out_p, dtypes, strict=True)], {
            "step": out_st["step"],
            "m": [m.to(d) for m, d in zip(out_st["m"], dtypes, strict=True)],
            "v": [v.to(d) for v, d in zip(out_st["v"], dtypes, strict=True)],
        }
    lr, (b1, b2), eps, wd = hp["lr"], hp["betas"], hp["eps"], hp["weight_decay"]
    t = state["step"] + 1
    t_used = {"two-ahead": t + 1, "behind": t - 1, "stuck": 1}.get(mistake, t)
    bc1, bc2 = 1 - b1**t_used, 1 - b2**t_used
    if mistake == "no-bias":
        bc1 = bc2 = 1.0
    lr = f32(lr) if "lr" in rounded else lr
    bc1 = f32(bc1) if "bc1" in rounded else bc1
    step_size = f32(f32(lr) / f32(bc1)) if "step-size" in rounded else lr / bc1
    sqrt_bc2 = float(torch.sqrt(torch.tensor(bc2))) if "sqrt-bc2" in rounded else math.sqrt(bc2)
    out_p, out_m, out_v = [], [], []
    for p, g, m, v in zip(params, grads, state["m"], state["v"], strict=True):
        if mistake == "l2":
            g = g + wd * p
        elif mistake == "decay-no-lr":
            p = p * (1 - wd)
        elif mistake == "decay-lr-twice":
            p = p * (1 - lr * lr * wd)
        elif mistake != "decay-after":
            p = p * (1 - lr * wd)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        if mistake == "eps-inside":
            denom = (v / bc2 + eps).sqrt()
        elif mistake == "eps-uncorrected":
            denom = (v.sqrt() + eps) / sqrt_bc2
        else:
            denom = v.sqrt() / sqrt_bc2 + eps
        p = p - step_size * m / denom
        if mistake == "decay-after":
            p = p * (1 - lr * wd)
        out_p.append(p)
        out_m.append(m)
        out_v.append(v)
    return out_p, {"step": state["step"] if mistake == "stuck" else t, "m": out_m, "v": out_v}


MISTAKES = {
    L2: "l2",
    NO_BIAS: "no-bias",
    EPS_INSIDE: "eps-inside",
    EPS_UNCORRECTED: "eps-uncorrected",
    DECAY_NO_LR: "decay-no-lr",
    DECAY_LR_TWICE: "decay-lr-twice",
    DECAY_AFTER: "decay-after",
    STEP_TWO_AHEAD: "two-ahead",
    STEP_BEHIND: "behind",
    STEP_STUCK: "stuck",
}


def trajectory_end(params, grads_seq, hp, state, mistake, rounded=frozenset()):
    """The parameters a mistake ends with after the steps of grads_seq, from state."""
    ps, st = params, state
    for grads in grads_seq:
        ps, st = variant_step(ps, grads, st, hp, mistake, rounded)
    return ps


def mistakes(params, grads_seq, hp, state):
    """The parameters each likely mistake ends with after the steps of grads_seq, from state."""
    found = {}
    for label, mistake in MISTAKES.items():
        try:
            found[label] = trajectory_end(params, grads_seq, hp, state, mistake)
        except ZeroDivisionError:  # "behind" at the first step divides by 1 - beta^0 = 0
            continue
    return found


def lost_precision(got, want, params, grads_seq, hp, state):
    """Whether float64 results are what float32 arithmetic gives: the whole step in float32 and cast
    back, or a drift from the oracle within a few times what rounding its scalars (lr, the bias
    corrections, the step size) to float32 gives."""
    if (
        compare(got, trajectory_end(params, grads_seq, hp, state, "f32", {"all"}), **tol(torch.float64))
        is None
    ):
        return True
    drift = [torch.zeros_like(w) for w in want]
    for rounded in F32_SCALARS:
        ps = trajectory_end(params, grads_seq, hp, state, "f32", rounded)
        drift = [torch.maximum(d, (p - w).abs()) for d, p, w in zip(drift, ps, want, strict=True)]
    bound = tol(torch.float64)
    try:
        return all(
            bool(((g - w).abs() <= 4 * d + bound["atol"] + bound["rtol"] * w.abs()).all())
            for g, w, d in zip(got, want, drift, strict=True)
        )
    except (RuntimeError, TypeError, ValueError, AttributeError):
        return False


def distance(a, b):
    """The largest absolute difference between two lists of tensors (inf where they do not line up)."""
    try:
        return max(float((x.double() - y.double()).abs().max()) for x, y in zip(a, b, strict=True))
    except (RuntimeError, TypeError, ValueError, AttributeError):
        return math.inf


def assert_params(got, want, what, dtype, params, grads_seq, hp, state):
    """assert_close against the oracle; the mistakes' trajectories are computed only on a mismatch.

    A mistake whose output the submission reproduces (far nearer to it than to the oracle's) is named
    first, when it is the only one; else, for float64, float32 arithmetic when the drift is what it
    gives; else a mistake that matches within the tolerance and is at least twice as near as the
    oracle's output."""
    try:
        assert_close(got, want, what=what, **tol(dtype))
    except GradingFailure:
        off = distance(got, want)
        found = mistakes(params, grads_seq, hp, state)
        strong = {label: ps for label, ps in found.items() if distance(got, ps) <= 0.01 * off}
        if strong:  # two mistakes that give the same output here (no bias vs eps at t = 1): name neither
            found = strong if len(strong) == 1 else {}
        elif dtype == torch.float64 and lost_precision(got, want, params, grads_seq, hp, state):
            found = {LOST_PRECISION: got}
        else:
            found = {label: ps for label, ps in found.items() if distance(got, ps) <= 0.5 * off}
        assert_close(got, want, what=what, misconceptions=found, **tol(dtype))


def zeros_state(params):
    return {"step": 0, "m": [torch.zeros_like(p) for p in params], "v": [torch.zeros_like(p) for p in params]}


def run(submission, params, grads_seq, hp, state):
    """The submission's trajectory: each step is fed its own previous output."""
    trajectory = []
    for grads in grads_seq:
        out = submission.adamw_step(params, grads, state, **hp)
        expect(
            isinstance(out, (tuple, list)) and len(out) == 2 and isinstance(out[1], dict),
            "adamw_step must return a pair (new_params, new_state), new_state a dict with 'step', 'm', 'v'",
        )
        params, state = out
        expect(
            isinstance(params, (list, tuple)) and all(isinstance(p, torch.Tensor) for p in params),
            "new_params must be a list of tensors, one per parameter, in the order given",
        )
        expect(
            {"step", "m", "v"} <= set(state),
            "new_state must be a dict with the keys 'step', 'm' and 'v'",
        )
        trajectory.append(list(params))
    return trajectory, state


def check_finite(params):
    expect(
        all(bool(torch.isfinite(p).all()) for p in params),
        "the new parameters have NaN or inf values",
        hint=NOT_FINITE,
    )


F32, F64 = torch.float32, torch.float64
CASES = [  # (hyperparameters, dtype): five settings, in float32 and float64
    pytest.param(
        {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2}, F32, id="defaults-f32"
    ),
    pytest.param(
        {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2}, F64, id="defaults-f64"
    ),
    pytest.param({"lr": 0.1, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1}, F32, id="large-lr-f32"),
    pytest.param({"lr": 0.1, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1}, F64, id="large-lr-f64"),
    pytest.param(
        {"lr": 3e-2, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}, F32, id="no-weight-decay"
    ),
    pytest.param(
        {"lr": 1e-2, "betas": (0.99, 0.9999), "eps": 1e-8, "weight_decay": 0.05}, F32, id="betas-near-one"
    ),
    pytest.param({"lr": 0.3, "betas": (0.5, 0.9), "eps": 1e-3, "weight_decay": 0.5}, F64, id="large-eps"),
]
DTYPES = [pytest.param(F32, id="float32"), pytest.param(F64, id="float64")]


@pytest.mark.parametrize("hp,dtype", CASES)
def test_matches_torch_adamw(submission, rng, hp, dtype):
    """20 steps on three parameters of different shapes match torch.optim.AdamW: the parameters after
    the first and the last step, and the final state (step, m, v)."""
    params = [make(rng, s, dtype, 2.0) for s in SHAPES]
    # gradients of several scales per step, the same for the submission and the oracle
    grads_seq = [[make(rng, s, dtype, 10 ** rng.uniform(-2, 1)) for s in SHAPES] for _ in range(STEPS)]
    want, want_state = torch_adamw(params, grads_seq, hp)
    got, got_state = run(submission, params, grads_seq, hp, zeros_state(params))
    check_finite(got[0])
    state0 = zeros_state(params)
    assert_params(
        got[0],
        want[0],
        "the parameters after the first step",
        dtype,
        params,
        grads_seq[:1],
        hp,
        state0,
    )
    assert_params(
        got[-1],
        want[-1],
        f"the parameters after {STEPS} steps",
        dtype,
        params,
        grads_seq,
        hp,
        state0,
    )
    expect(
        got_state["step"] == STEPS,
        f"after {STEPS} steps from init_state, the state's step must be {STEPS}",
        detail=f"got {got_state['step']!r}",
        hint=STEP_STUCK,
    )
    assert_close(got_state["m"], want_state["m"], what=f"the state's m after {STEPS} steps", **tol(dtype))
    assert_close(got_state["v"], want_state["v"], what=f"the state's v after {STEPS} steps", **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_first_step(submission, rng, dtype):
    """The very first step (state['step'] = 0): t = 1, both bias corrections are at their largest."""
    hp = {"lr": 0.05, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1}
    params = [make(rng, s, dtype, 2.0) for s in SHAPES]
    grads = [make(rng, s, dtype) for s in SHAPES]
    want, want_state = torch_adamw(params, [grads], hp)
    got, got_state = submission.adamw_step(params, grads, zeros_state(params), **hp)
    check_finite(got)
    assert_params(
        got,
        want[0],
        "the parameters after the first step",
        dtype,
        params,
        [grads],
        hp,
        zeros_state(params),
    )
    expect(got_state["step"] == 1, "after the first step, the state's step must be 1", hint=STEP_STUCK)
    assert_close(got_state["m"], want_state["m"], what="the state's m after the first step", **tol(dtype))
    assert_close(got_state["v"], want_state["v"], what="the state's v after the first step", **tol(dtype))


@pytest.mark.parametrize(
    "step", [pytest.param(1, id="step-1"), pytest.param(9, id="step-9"), pytest.param(500, id="step-500")]
)
def test_resume_from_state(submission, rng, step):
    """One step from a state saved mid-training (its step, m and v given): t = state['step'] + 1."""
    hp = {"lr": 0.02, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 0.1}
    dtype = torch.float64
    params = [make(rng, s, dtype, 2.0) for s in SHAPES]
    state = {
        "step": step,
        "m": [make(rng, s, dtype, 0.3) for s in SHAPES],
        "v": [make(rng, s, dtype, 0.5) ** 2 + 0.01 for s in SHAPES],
    }
    grads_seq = [[make(rng, s, dtype) for s in SHAPES] for _ in range(2)]
    want, want_state = torch_adamw(params, grads_seq, hp, state)
    got, got_state = run(submission, params, grads_seq, hp, state)
    check_finite(got[0])
    assert_params(
        got[0],
        want[0],
        "the parameters after one step from the saved state",
        dtype,
        params,
        grads_seq[:1],
        hp,
        state,
    )
    assert_params(
        got[-1],
        want[-1],
        "the parameters after two steps from the saved state",
        dtype,
        params,
        grads_seq,
        hp,
        state,
    )
    expect(
        got_state["step"] == step + 2,
        "two steps from a saved state must advance its step by two",
        hint=STEP_STUCK,
    )


def test_zero_gradients(submission, rng):
    """All-zero gradients from the start: m = v = 0, the Adam update is 0 / (0 + eps) = 0, and only the
    weight decay moves the parameters: p * (1 - lr * weight_decay) per step."""
    hp = {"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.2}
    dtype = torch.float64
    params = [make(rng, s, dtype, 2.0) for s in SHAPES]
    grads_seq = [[torch.zeros(s, dtype=dtype) for s in SHAPES] for _ in range(5)]
    want, _ = torch_adamw(params, grads_seq, hp)
    got, got_state = run(submission, params, grads_seq, hp, zeros_state(params))
    expect(
        all(bool(torch.isfinite(p).all()) for p in got[0]),
        "zero gradients give NaN or inf: m = v = 0 and the update is 0 / (sqrt(0) + eps) = 0",
        hint="keep eps in the denominator: m_hat / (sqrt(v_hat) + eps)",
    )
    assert_params(
        got[-1],
        want[-1],
        "the parameters after 5 steps of zero gradients",
        dtype,
        params,
        grads_seq,
        hp,
        zeros_state(params),
    )
    assert_close(got_state["m"], [torch.zeros(s, dtype=dtype) for s in SHAPES], what="m after zero gradients")
    assert_close(got_state["v"], [torch.zeros(s, dtype=dtype) for s in SHAPES], what="v after zero gradients")


def test_some_gradients_vanish(submission, rng):
    """Gradients that stop (become zero) after a few steps: m and v decay, the update keeps going."""
    hp = {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}
    dtype = torch.float32
    params = [make(rng, s, dtype, 2.0) for s in SHAPES]
    grads_seq = [[make(rng, s, dtype) for s in SHAPES] for _ in range(4)]
    grads_seq += [[torch.zeros(s, dtype=dtype) for s in SHAPES] for _ in range(6)]
    want, _ = torch_adamw(params, grads_seq, hp)
    got, _ = run(submission, params, grads_seq, hp, zeros_state(params))
    assert_params(
        got[-1],
        want[-1],
        "the parameters after 4 steps with gradients and 6 without",
        dtype,
        params,
        grads_seq,
        hp,
        zeros_state(params),
    )


@pytest.mark.parametrize(
    "scale,eps",
    [pytest.param(1e-6, 1e-8, id="tiny-gradients"), pytest.param(1e-2, 1e-3, id="large-eps")],
)
def test_eps_placement(submission, rng, scale, eps):
    """Gradients so small that sqrt(v_hat) is near eps: where eps is added decides the update."""
    hp = {"lr": 0.01, "betas": (0.9, 0.999), "eps": eps, "weight_decay": 0.0}
    dtype = torch.float64
    params = [make(rng, s, dtype) for s in SHAPES]
    grads_seq = [[make(rng, s, dtype, scale) for s in SHAPES] for _ in range(5)]
    want, _ = torch_adamw(params, grads_seq, hp)
    got, _ = run(submission, params, grads_seq, hp, zeros_state(params))
    assert_params(
        got[-1],
        want[-1],
        "the parameters after 5 steps of tiny gradients",
        dtype,
        params,
        grads_seq,
        hp,
        zeros_state(params),
    )


def test_random_shapes(submission, seed):
    """Random numbers of parameters and shapes, against torch.optim.AdamW (float32, 6 steps)."""
    hp = {"lr": 0.05, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 0.1}

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        shapes = [(sizes["rows"] + i, sizes["cols"]) for i in range(sizes["params"])]
        params = [make(rng, s, torch.float32, 2.0) for s in shapes]
        grads_seq = [[make(rng, s, torch.float32) for s in shapes] for _ in range(sizes["steps"])]
        want, _ = torch_adamw(params, grads_seq, hp)
        got, _ = run(submission, params, grads_seq, hp, zeros_state(params))
        check_finite(got[0])
        assert_params(
            got[-1],
            want[-1],
            f"the parameters after {sizes['steps']} steps",
            torch.float32,
            params,
            grads_seq,
            hp,
            zeros_state(params),
        )

    shrink(
        check,
        {"params": 3, "rows": 6, "cols": 5, "steps": 6},
        seed=seed,
        minimum={"params": 1, "rows": 1, "cols": 1, "steps": 1},
        budget=24,
    )


def test_inputs_unchanged(submission, rng):
    """adamw_step leaves params, grads and state (its tensors and its step) as they were."""
    hp = {"lr": 0.05, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1}
    dtype = torch.float32
    params = [make(rng, s, dtype, 2.0) for s in SHAPES]
    grads = [make(rng, s, dtype) for s in SHAPES]
    state = {
        "step": 4,
        "m": [make(rng, s, dtype, 0.3) for s in SHAPES],
        "v": [make(rng, s, dtype, 0.5) ** 2 for s in SHAPES],
    }
    want, _ = torch_adamw(params, [grads], hp, state)
    got, _ = call_unchanged(
        submission.adamw_step,
        params,
        grads,
        state,
        names=("params", "grads", "state"),
        what="adamw_step",
        hint=MUTATED,
        **hp,
    )
    assert_params(
        got,
        want[0],
        "the parameters after one step",
        dtype,
        params,
        [grads],
        hp,
        state,
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_init_state(submission, dtype):
    """init_state: step 0, and m and v zeros of each parameter's shape and dtype."""
    params = [torch.ones(s, dtype=dtype) for s in SHAPES]
    state = submission.init_state(params)
    expect(
        isinstance(state, dict) and {"step", "m", "v"} <= set(state),
        "init_state must return a dict with the keys 'step', 'm' and 'v'",
    )
    expect(state["step"] == 0, "init_state's step must be 0 (no step taken yet)")
    zeros = [torch.zeros(s, dtype=dtype) for s in SHAPES]
    assert_close(state["m"], zeros, what="init_state(params)['m']")
    assert_close(state["v"], zeros, what="init_state(params)['v']")
