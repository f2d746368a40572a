"""Hidden tests for gae: random rollouts against an independent float64 oracle (with a shrunk
smallest failing case), the edge cases of the lesson (lambda = 0 and 1, gamma = 0, an episode
ending at the last step, several ends in a row, T = 1, one environment), the dones' dtypes, every
floating dtype, inputs left unchanged, and how the work grows with the rollout's length."""

import numpy as np
import pytest
import torch

from grader.testing import Call, assert_close, call_unchanged, dtype_params, expect, shrink, tolerance

# One wording per mistake; each says what the output matched, then how to compute it.
NO_MASK = (
    "the output matches GAE with the dones ignored (values and advantages carried across episode "
    "ends): where dones[t] = 1, multiply V_{t+1} in delta_t and A_{t+1} in A_t by (1 - dones[t])"
)
MASK_DELTA_ONLY = (
    "the output matches GAE with the done mask on V_{t+1} in delta_t but not on A_{t+1}: the "
    "recursion is A_t = delta_t + gamma * lam * (1 - dones[t]) * A_{t+1}"
)
MASK_CARRY_ONLY = (
    "the output matches GAE with the done mask on A_{t+1} but not on V_{t+1}: the TD error is "
    "delta_t = r_t + gamma * V_{t+1} * (1 - dones[t]) - V_t"
)
GAMMA_ONLY = (
    "the output matches a recursion that carries A_{t+1} back with gamma alone: the factor is "
    "gamma * lam, A_t = delta_t + gamma * lam * (1 - dones[t]) * A_{t+1}"
)
FORWARD = (
    "the output matches the recursion run forwards in time (from t = 0): A_t depends on A_{t+1}, "
    "so loop from t = T - 1 down to t = 0"
)
LAST_DONE_IGNORED = (
    "the output matches GAE that bootstraps from last_value even where the last step ended its "
    "episode: when dones[T - 1] = 1, last_value is multiplied by 0 like any V_{t+1}"
)
CLEANRL_SHIFT = (
    "the output matches the mask of CleanRL's ppo.py, 1 - dones[t + 1] at step t: here dones[t] = 1 "
    "means the episode ended at step t, so step t is masked by (1 - dones[t])"
)
DISCOUNTED_RETURNS = (
    "the returns match discounted sums of rewards (bootstrapped with last_value): the returns asked "
    "for are advantages + values"
)
SWAPPED = "the first output matches the returns: return (advantages, returns), in that order"
FLOAT32_DETOUR = (
    "the float64 output is only as precise as float32: float64 inputs are computed in float64; only "
    "float16 and bfloat16 inputs go through float32"
)
HALF_PRECISION = (
    "the output is within 10 times the tolerance of the exact result but not within the tolerance, "
    "which a float32 computation rounded once at the end meets: compute float16 and bfloat16 inputs "
    "in float32 and cast the results back at the end"
)
TUPLE_HINT = "return a tuple (advantages, returns) of two tensors, each of the shape of rewards"

# float32 results against the float64 oracle: the recursion rounds once or twice per step. Over 900
# random rollouts (T = 40 and 64, gamma up to 0.999) the reference, the quadratic sum and the matrix
# form stay within 0.7 x (1e-5 + 1e-5 |A|); the tolerance below is 7 times that. float16 and
# bfloat16 computed in float32 stay within a third of tolerance(dtype); computed in the half dtype
# itself, 5 to 6 times over it.
RTOL32, ATOL32 = 5e-5, 5e-5


# ---------------------------------------------------------------------------- oracle and mistakes


def oracle(rewards, values, dones, last_value, gamma, lam):
    """GAE in float64, one environment at a time, in plain Python floats (the trusted answer):
    (advantages, returns), float64, of the shape of rewards."""
    one_env = rewards.dim() == 1
    r = rewards.double().reshape(rewards.shape[0], -1).tolist()
    v = values.double().reshape(rewards.shape[0], -1).tolist()
    d = dones.double().reshape(rewards.shape[0], -1).tolist()
    lv = last_value.double().reshape(-1).tolist()
    steps, envs = len(r), len(lv)
    adv = [[0.0] * envs for _ in range(steps)]
    for n in range(envs):
        next_value, next_adv = lv[n], 0.0
        for t in range(steps - 1, -1, -1):
            keep = 1.0 - d[t][n]
            delta = r[t][n] + gamma * next_value * keep - v[t][n]
            next_adv = delta + gamma * lam * keep * next_adv
            adv[t][n] = next_adv
            next_value = v[t][n]
    a = torch.tensor(adv, dtype=torch.float64)
    ret = a + torch.tensor(v, dtype=torch.float64)
    if one_env:
        a, ret = a.reshape(-1), ret.reshape(-1)
    return a, ret


def variant(
    rewards,
    values,
    dones,
    last_value,
    gamma,
    lam,
    *,
    mask_delta=True,
    mask_carry=True,
    factor="gamma_lam",
    forward=False,
    last_done=True,
    shift=False,
):
    """GAE with one deliberate change, in float64: what a mistake produces."""
    r, v, d = rewards.double(), values.double(), dones.double()
    lv = last_value.double().reshape(v.shape[1:])
    keep = 1.0 - d
    if shift:  # CleanRL's mask: 1 - dones[t + 1] at step t (its next_done at the last step)
        keep = torch.cat([keep[1:], keep[-1:]])
    if not last_done:
        keep = keep.clone()
        keep[-1] = 1.0
    next_v = torch.cat([v[1:], lv.unsqueeze(0)])
    deltas = r + gamma * next_v * (keep if mask_delta else 1.0) - v
    carry = (gamma * lam if factor == "gamma_lam" else gamma) * (
        keep if mask_carry else torch.ones_like(keep)
    )
    a = torch.empty_like(deltas)
    running = torch.zeros_like(deltas[0])
    order = range(deltas.shape[0]) if forward else range(deltas.shape[0] - 1, -1, -1)
    for t in order:
        running = deltas[t] + carry[t] * running
        a[t] = running
    return a, a + v


def discounted_returns(rewards, values, dones, last_value, gamma):
    """Discounted sums of rewards within each episode, bootstrapped with last_value."""
    r, d = rewards.double(), dones.double()
    g = torch.empty_like(r)
    running = last_value.double().reshape(r.shape[1:])
    for t in range(r.shape[0] - 1, -1, -1):
        running = r[t] + gamma * (1.0 - d[t]) * running
        g[t] = running
    return g


def mistakes(rewards, values, dones, last_value, gamma, lam, dtype):
    """(advantage mistakes, returns mistakes): wording -> the output in `dtype`, keeping only those
    that differ from the right answer and from every mistake listed before them."""
    args = (rewards, values, dones, last_value, gamma, lam)
    right_a, right_r = oracle(*args)
    # the most specific first: where two mistakes give the same output, the narrower one is named
    found = {
        LAST_DONE_IGNORED: variant(*args, last_done=False),
        MASK_DELTA_ONLY: variant(*args, mask_carry=False),
        MASK_CARRY_ONLY: variant(*args, mask_delta=False),
        CLEANRL_SHIFT: variant(*args, shift=True),
        NO_MASK: variant(*args, mask_delta=False, mask_carry=False),
        GAMMA_ONLY: variant(*args, factor="gamma"),
        FORWARD: variant(*args, forward=True),
    }
    adv, ret = {}, {}
    # discounted sums of rewards are also the returns of GAMMA_ONLY: named as such when the
    # advantages were right (the advantages are checked first)
    disc = discounted_returns(rewards, values, dones, last_value, gamma)
    if not torch.allclose(disc, right_r, rtol=1e-4, atol=1e-4):
        ret[DISCOUNTED_RETURNS] = disc.to(dtype)
    seen = [torch.cat([right_a.reshape(-1), right_r.reshape(-1)])]
    for label, (a, r) in found.items():
        both = torch.cat([a.reshape(-1), r.reshape(-1)])
        if any(torch.allclose(both, other, rtol=1e-4, atol=1e-4) for other in seen):
            continue
        seen.append(both)
        adv[label] = a.to(dtype)
        ret.setdefault(label, r.to(dtype))
    adv[SWAPPED] = right_r.to(dtype)
    return adv, ret


def check_outputs(got, args, gamma, lam, *, what, rtol=RTOL32, atol=ATOL32):
    """gae's result `got` for `args` = (rewards, values, dones, last_value) against the oracle,
    advantages first, naming a matched mistake."""
    dtype = args[0].dtype
    expect(
        isinstance(got, tuple | list) and len(got) == 2 and all(isinstance(x, torch.Tensor) for x in got),
        f"{what}: gae must return a tuple of two tensors, (advantages, returns)",
        hint=TUPLE_HINT,
    )
    want_a, want_r = oracle(*args, gamma, lam)
    wrong_a, wrong_r = mistakes(*args, gamma, lam, dtype)
    assert_close(
        got[0], want_a.to(dtype), what=f"{what}: the advantages", rtol=rtol, atol=atol, misconceptions=wrong_a
    )
    assert_close(
        got[1], want_r.to(dtype), what=f"{what}: the returns", rtol=rtol, atol=atol, misconceptions=wrong_r
    )


def check_gae(submission, rewards, values, dones, last_value, gamma, lam, *, what):
    """The submission's (advantages, returns) against the oracle, naming a matched mistake."""
    args = (rewards, values, dones, last_value)
    check_outputs(submission.gae(*args, gamma=gamma, lam=lam), args, gamma, lam, what=what)


def rollout(rng, steps, envs, *, p_done=0.15, dtype=torch.float32):
    """A random rollout: rewards, values, bool dones and last_value (of shape (envs,), or () when
    envs is None, a single environment's (T,) layout)."""
    shape = (steps,) if envs is None else (steps, envs)
    rewards = torch.from_numpy(rng.standard_normal(shape)).to(dtype)
    values = torch.from_numpy(2.0 * rng.standard_normal(shape) + 0.5).to(dtype)
    dones = torch.from_numpy(rng.random(shape) < p_done)
    last_value = torch.from_numpy(np.asarray(2.0 * rng.standard_normal(shape[1:]) + 0.5)).to(dtype)
    return rewards, values, dones, last_value


# ---------------------------------------------------------------------------- random rollouts


@pytest.mark.parametrize(
    "gamma, lam",
    [
        pytest.param(0.99, 0.95, id="gamma-0.99-lam-0.95"),
        pytest.param(0.9, 0.5, id="gamma-0.9-lam-0.5"),
        pytest.param(0.8, 0.97, id="gamma-0.8-lam-0.97"),
    ],
)
def test_random_rollouts(submission, seed, gamma, lam):
    """Random (T, N) rollouts with episode ends here and there, against a float64 oracle."""

    def check(sizes, case_seed):
        rng = np.random.default_rng(case_seed)
        args = rollout(rng, sizes["T"], sizes["N"])
        check_gae(submission, *args, gamma, lam, what=f"gae on a rollout of T={sizes['T']}, N={sizes['N']}")

    # at least 3 steps: with fewer, several mistakes give the same numbers
    shrink(check, {"T": 40, "N": 6}, seed=seed, minimum={"T": 3, "N": 1})


def test_one_environment(submission, rng):
    """A single environment in the (T,) layout, with last_value a 0-dim tensor."""
    args = rollout(rng, 30, None, p_done=0.1)
    args[2][[4, 11, 12, 20]] = True
    check_gae(submission, *args, 0.97, 0.9, what="gae on a (T,) rollout")


def test_defaults(submission, rng):
    """Called without gamma and lam, gae uses gamma = 0.99 and lam = 0.95."""
    args = rollout(rng, 25, 3)
    check_outputs(submission.gae(*args), args, 0.99, 0.95, what="gae with the default gamma and lam")


# ---------------------------------------------------------------------------- edge cases


def test_lambda_zero_is_one_step_td(submission, rng):
    """lam = 0: each advantage is its own one-step TD error, delta_t."""
    args = rollout(rng, 20, 4)
    check_gae(submission, *args, 0.95, 0.0, what="gae with lam = 0")


def test_lambda_one_is_monte_carlo(submission, rng):
    """lam = 1, every episode ends inside the rollout: returns are the discounted sums of rewards
    to the end of each episode, and advantages those minus the values."""
    r, v, d, lv = rollout(rng, 24, 5, p_done=0.2)
    d[-1] = True  # the rollout ends with every episode: last_value is never used
    lv = torch.full_like(lv, 100.0)
    got = submission.gae(r, v, d, lv, gamma=0.9, lam=1.0)
    check_gae(submission, r, v, d, lv, 0.9, 1.0, what="gae with lam = 1")
    assert_close(
        got[1],
        discounted_returns(r, v, d, torch.zeros_like(lv), 0.9).float(),
        what="the returns with lam = 1 and no bootstrap",
        rtol=RTOL32,
        atol=ATOL32,
    )


def test_gamma_zero(submission, rng):
    """gamma = 0: nothing is carried back; advantages are r_t - V_t and returns are r_t."""
    args = rollout(rng, 15, 3)
    check_gae(submission, *args, 0.0, 0.95, what="gae with gamma = 0")


def test_episode_ends_at_last_step(submission, rng):
    """Where the last step ends its episode, last_value is not used (the others bootstrap from it)."""
    r, v, d, lv = rollout(rng, 12, 4, p_done=0.0)
    d[-1, 0] = True
    d[-1, 2] = True
    lv = torch.tensor([50.0, -3.0, -40.0, 7.0])
    check_gae(submission, r, v, d, lv, 0.99, 0.95, what="gae where the last step ends some episodes")


def test_several_ends_in_a_row(submission, rng):
    """Several episode ends in one environment, one-step episodes among them (ends on consecutive
    steps), and an environment that never ends."""
    r, v, d, lv = rollout(rng, 16, 3, p_done=0.0)
    d[[1, 5, 6, 7, 11], 0] = True
    d[[0, 1, 2, 3], 1] = True
    check_gae(submission, r, v, d, lv, 0.95, 0.9, what="gae with several episode ends per environment")


@pytest.mark.parametrize("envs", [pytest.param(None, id="one-env"), pytest.param(5, id="five-envs")])
def test_single_step(submission, rng, envs):
    """T = 1: A_0 = r_0 + gamma * last_value * (1 - dones[0]) - V_0."""
    r, v, d, lv = rollout(rng, 1, envs, p_done=0.5)
    check_gae(submission, r, v, d, lv, 0.9, 0.8, what="gae on a single step")


def test_returns_are_advantages_plus_values(submission, rng):
    """The returns are the advantages plus the values (the lambda-returns), not a separate sum."""
    r, v, d, lv = rollout(rng, 30, 4)
    got = submission.gae(r, v, d, lv, gamma=0.9, lam=0.8)
    expect(
        isinstance(got, tuple | list) and len(got) == 2 and all(isinstance(x, torch.Tensor) for x in got),
        "gae must return a tuple of two tensors, (advantages, returns)",
        hint=TUPLE_HINT,
    )
    assert_close(
        got[1],
        got[0] + v,
        what="the returns, against your own advantages + values",
        rtol=RTOL32,
        atol=ATOL32,
        misconceptions={DISCOUNTED_RETURNS: discounted_returns(r, v, d, lv, 0.9).float()},
    )


# ---------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("bool", id="bool-dones"),
        pytest.param("float", id="float-dones"),
    ],
)
def test_dones_dtypes(submission, rng, kind):
    """dones may be a bool tensor or a float tensor of 0.0 and 1.0, with the same result."""
    r, v, d, lv = rollout(rng, 20, 4, p_done=0.2)
    if kind == "float":
        d = d.float()
    check_gae(submission, r, v, d, lv, 0.99, 0.95, what=f"gae with {kind} dones")


@pytest.mark.parametrize("dtype", dtype_params())
def test_dtypes(submission, rng, dtype):
    """The outputs have the dtype of rewards; float16 and bfloat16 stay close to the exact answer."""
    r, v, d, lv = rollout(rng, 32, 4, p_done=0.1, dtype=dtype)
    got = submission.gae(r, v, d, lv, gamma=0.99, lam=0.95)
    expect(
        isinstance(got, tuple | list) and len(got) == 2,
        "gae must return (advantages, returns)",
        hint=TUPLE_HINT,
    )
    name = str(dtype).removeprefix("torch.")
    expect(
        all(isinstance(x, torch.Tensor) and x.dtype == dtype for x in got),
        f"both outputs must have the dtype of rewards, {name}",
        detail=f"got {[str(getattr(x, 'dtype', type(x))) for x in got]}",
        hint="cast the results back with .to(rewards.dtype) at the end",
    )
    if dtype == torch.float32:
        check_outputs(got, (r, v, d, lv), 0.99, 0.95, what="gae in float32")
        return
    want_a, want_r = oracle(r, v, d, lv, 0.99, 0.95)
    wrong_a, wrong_r = mistakes(r, v, d, lv, 0.99, 0.95, dtype)
    tol = tolerance(dtype)
    loose = {key: 10 * value for key, value in tol.items()}
    for label, out, want, wrong in (
        ("advantages", got[0], want_a, wrong_a),
        ("returns", got[1], want_r, wrong_r),
    ):
        # first within 10 times the tolerance, naming a mistake; then as one rounding of float32 is
        assert_close(out, want.to(dtype), what=f"the {name} {label}", **loose, misconceptions=wrong)
        assert_close(out, want.to(dtype), what=f"the {name} {label}", **tol, hint=HALF_PRECISION)


def test_float64_stays_float64(submission, rng):
    """float64 inputs are computed in float64, to float64's precision."""
    r, v, d, lv = rollout(rng, 40, 3, dtype=torch.float64)
    got = submission.gae(r, v, d, lv, gamma=0.99, lam=0.95)
    expect(
        isinstance(got, tuple | list) and len(got) == 2 and all(isinstance(x, torch.Tensor) for x in got),
        "gae must return a tuple of two tensors, (advantages, returns)",
        hint=TUPLE_HINT,
    )
    want_a, want_r = oracle(r, v, d, lv, 0.99, 0.95)
    wrong_a, wrong_r = mistakes(r, v, d, lv, 0.99, 0.95, torch.float64)
    for name, out, want, wrong in (
        ("advantages", got[0], want_a, wrong_a),
        ("returns", got[1], want_r, wrong_r),
    ):
        # first as a float32 computation would be checked, naming a mistake; then to float64's precision
        assert_close(out, want, what=f"the float64 {name}", rtol=RTOL32, atol=ATOL32, misconceptions=wrong)
        assert_close(out, want, what=f"the float64 {name}", rtol=1e-10, atol=1e-12, hint=FLOAT32_DETOUR)


def test_inputs_unchanged(submission, rng):
    """gae leaves rewards, values, dones and last_value as they were."""
    # Only the inputs are checked here: the values on such rollouts are checked by test_random_rollouts.
    r, v, d, lv = rollout(rng, 20, 4, p_done=0.2)
    call_unchanged(
        submission.gae,
        r,
        v,
        d,
        lv,
        names=("rewards", "values", "dones", "last_value"),
        what="gae",
        hint="the rollout's tensors are still needed after gae (the values for the value loss): build "
        "new tensors (torch.empty_like, torch.cat, torch.stack) instead of writing into the ones given",
        gamma=0.9,
        lam=0.9,
    )


# ---------------------------------------------------------------------------- growth with T

# With N = 8 environments and no episode end, at T = 6, 18, 54: the reference issues about 6 T + 14
# tensor ops (50, 122 and 338: a fitted exponent of 0.87) and its largest tensor is the (T, N) output
# (exponent 1). Summing the discounted deltas afresh for every t issues 3 T^2 + 9 T + 11 ops (173 to
# 9245: exponent 1.81); a (T, T, N) matrix of discount factors allocates T^2 N numbers (exponent 2).
# The limit is 1.3. Sizes are small because the probe costs ~0.2 ms per op in the sandbox.
GROWTH_ENVS = 8
QUADRATIC_HINT = (
    "the number of tensor operations grew faster than the rollout's length: one backward pass, "
    "A_t = delta_t + gamma * lam * (1 - dones[t]) * A_{t+1}, costs a few operations per step"
)
MATRIX_HINT = (
    "the largest tensor grew faster than the rollout's length: the backward recursion needs nothing "
    "larger than the (T, N) outputs, no (T, T) matrix"
)


def long_rollout(rng, steps):
    """A rollout of `steps` steps in N = 8 environments in which no episode ends."""
    r, v, _, lv = rollout(rng, steps, GROWTH_ENVS)
    return r, v, torch.zeros(steps, GROWTH_ENVS, dtype=torch.bool), lv


@pytest.mark.performance
def test_ops_grow_linearly(perf):
    """The number of tensor operations grows at most linearly with T (runner-reported)."""

    def make(rng, n):
        return Call("gae", *long_rollout(rng, n), gamma=0.99, lam=0.95)

    perf.scaling("ops", make, hint=QUADRATIC_HINT)


@pytest.mark.performance
def test_memory_grows_linearly(perf):
    """The largest tensor allocated grows at most linearly with T (runner-reported)."""

    def make(rng, n):
        return Call("gae", *long_rollout(rng, n), gamma=0.99, lam=0.95)

    perf.scaling("memory", make, hint=MATRIX_HINT)
