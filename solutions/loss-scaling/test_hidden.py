"""Hidden tests for loss-scaling: the scaler against torch.amp.GradScaler("cpu") driving
torch.optim.SGD, iteration by iteration (scales, counters, skipped steps, parameters), the
unscaled gradients, clipping after unscaling, the misuse errors, and random runs."""

import numpy as np
import pytest
import torch

from grader.testing import assert_close, call_unchanged, expect, shrink

INF, NAN = float("inf"), float("nan")
FLOAT32_MAX = torch.finfo(torch.float32).max

NO_BACKOFF = "the scale was not backed off after an overflow: multiply it by backoff_factor on every skip"
NO_RESET = "the growth counter was not reset after a skip: growth needs growth_interval finite steps in a row"
GROW_LATE = "grew one finite step too late: grow on the update where growth_tracker reaches growth_interval"
GROW_EARLY = "grew one finite step too early: grow on the update where growth_tracker reaches growth_interval"
NO_GROWTH = "the scale never grew: multiply it by growth_factor after growth_interval finite steps in a row"
STEPPED_ON_INF = "stepped although a gradient held inf or NaN: skip the step whenever found_inf"
UNSCALED_TWICE = (
    "the gradients were unscaled twice: after unscale(), step() must use the gradients as they are given"
)
CLIPPED_SCALED = "clipped the scaled gradients? Unscale first, then clip the true gradients"
NOT_UNSCALED = "the gradients were not unscaled before the step: divide them by the scale"


def f32(value):
    return torch.tensor(value, dtype=torch.float32).item()


def randn(rng, *shape, scale=1.0):
    return torch.from_numpy(rng.standard_normal(shape).astype(np.float32) * np.float32(scale))


def simulate(found, init, growth, backoff, interval, rule=""):
    """The scales and counters after each update for these found_inf flags, by the rules or by a
    known mistake (`rule`)."""
    scale, tracker, scales, trackers = f32(init), 0, [], []
    target = interval + {"late": 1, "early": -1}.get(rule, 0)
    for inf in found:
        if inf:
            if rule != "no_backoff":
                scale = f32(scale * backoff)
            if rule != "no_reset":
                tracker = 0
        else:
            tracker += 1
            if rule != "no_growth" and tracker >= max(target, 1):
                if scale * growth <= FLOAT32_MAX:
                    scale = f32(scale * growth)
                tracker = 0
        scales.append(scale)
        trackers.append(tracker)
    return scales, trackers


def mistaken(found, init, growth, backoff, interval):
    """The scale traces of the known mistakes, keyed by their hints."""
    rules = {NO_BACKOFF: "no_backoff", NO_RESET: "no_reset", GROW_LATE: "late", GROW_EARLY: "early"}
    rules[NO_GROWTH] = "no_growth"
    right = simulate(found, init, growth, backoff, interval)
    out = {}
    for hint, rule in rules.items():
        trace = simulate(found, init, growth, backoff, interval, rule)
        if trace != right:
            out[hint] = trace
    return out


def clip(grads, max_norm):
    """clip_grad_norm_'s arithmetic on a list of tensors (None entries left out)."""
    present = [g for g in grads if g is not None]
    if not present:
        return list(grads)
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in present]))
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    return [None if g is None else g * coef for g in grads]


class PlainSGD:
    """The update of torch.optim.SGD(params, lr) without momentum, p.add_(p.grad, alpha=-lr), in the
    shape GradScaler drives (param_groups and step()); torch.optim itself takes seconds to import."""

    def __init__(self, params, lr):
        self.param_groups = [{"params": list(params), "lr": lr}]
        self.state = {}

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])


class Oracle:
    """torch.amp.GradScaler("cpu") driving plain SGD over copies of the parameters."""

    def __init__(self, params, lr, **settings):
        self.params = [torch.nn.Parameter(p.clone()) for p in params]
        self.opt = PlainSGD(self.params, lr=lr)
        self.scaler = torch.amp.GradScaler("cpu", **settings)
        self.scaler.scale(torch.tensor(0.0))  # the scale tensor is created lazily

    @property
    def scale(self):
        return self.scaler.get_scale()

    def iterate(self, grads, mode="step", max_norm=None):
        """One iteration; returns (found_inf, unscaled grads or None, params after)."""
        for p, g in zip(self.params, grads, strict=True):
            p.grad = None if g is None else g.clone()
        found = any(g is not None and not bool(torch.isfinite(g).all()) for g in grads)
        unscaled = None
        if mode in ("unscale", "clip", "max_norm"):
            self.scaler.unscale_(self.opt)
            unscaled = [None if p.grad is None else p.grad.clone() for p in self.params]
            if mode != "unscale":
                torch.nn.utils.clip_grad_norm_(self.params, max_norm)
        self.scaler.step(self.opt)
        self.scaler.update()
        return found, unscaled, [p.detach().clone() for p in self.params]


def drive(submission, params, plan, lr=0.1, max_norm=1.0, **settings):
    """Run the submission's scaler and the oracle side by side through `plan` (a list of
    (true grads, where to put inf / NaN, mode)), and compare everything, iteration by iteration."""
    oracle = Oracle(params, lr, **settings)
    scaler = submission.LossScaler(**settings)
    mine = [p.clone() for p in params]
    found, stepped, scales, trackers, got_params, want_params, mistakes = [], [], [], [], [], [], []
    for true_grads, poison, mode in plan:
        grads = [None if g is None else g * oracle.scale for g in true_grads]
        for index, value in poison:
            grads[index] = grads[index].clone()
            grads[index].view(-1)[0] = value
        scaler.call("scale_loss", torch.tensor(1.5))  # a finite loss, as in a training loop
        if mode == "step":
            mine, took = scaler.call("step", mine, grads, lr)
        elif mode == "max_norm":
            mine, took = scaler.call("step", mine, grads, lr, max_norm=max_norm)
        else:  # unscale (then clip here, in the training loop), then step
            unscaled, _ = scaler.call("unscale", grads)
            if mode == "clip":
                unscaled = clip(unscaled, max_norm)
            mine, took = scaler.call("step", mine, unscaled, lr)
        scaler.call("update")
        scale_before, before = oracle.scale, [q.detach().clone() for q in oracle.params]
        inf, unscaled_true, want = oracle.iterate(grads, mode, max_norm)
        mistakes.append(step_mistakes(before, grads, unscaled_true, scale_before, mode, lr, max_norm))
        found.append(inf)
        stepped.append(took)
        scales.append(scaler.scale)
        trackers.append(scaler.growth_tracker)
        got_params.append(mine)
        want_params.append(want)
    init, interval = settings.get("init_scale", 2.0**16), settings.get("growth_interval", 2000)
    growth, backoff = settings.get("growth_factor", 2.0), settings.get("backoff_factor", 0.5)
    want_scales, want_trackers = simulate(found, init, growth, backoff, interval)
    expect(
        stepped == [not f for f in found],
        "step() must return stepped=False exactly on the iterations whose gradients hold inf or NaN",
        hint=STEPPED_ON_INF if any(s and f for s, f in zip(stepped, found, strict=True)) else "",
        detail=f"stepped {stepped}; expected {[not f for f in found]}",
    )
    wrong = mistaken(found, init, growth, backoff, interval)
    assert_close(
        scales,
        want_scales,
        what="the scale after each update",
        rtol=1e-6,
        atol=0.0,
        misconceptions={hint: trace[0] for hint, trace in wrong.items()},
    )
    assert_close(
        trackers,
        want_trackers,
        what="growth_tracker after each update",
        misconceptions={hint: trace[1] for hint, trace in wrong.items()},
    )
    for i, (got, want, wrong) in enumerate(zip(got_params, want_params, mistakes, strict=True), start=1):
        assert_close(
            got,
            want,
            what=f"the parameters after iteration {i}",
            rtol=1e-5,
            atol=1e-6,
            misconceptions=wrong if not found[i - 1] else {},
            hint=STEPPED_ON_INF if found[i - 1] else "",
        )
    return scaler


def step_mistakes(params, grads, unscaled, scale, mode, lr, max_norm):
    """The parameters that the known step mistakes give for one finite iteration."""

    def sgd(gs):
        return [p - lr * g for p, g in zip(params, gs, strict=True)]

    if mode == "step":
        return {NOT_UNSCALED: sgd(grads)}
    if mode == "max_norm":
        return {CLIPPED_SCALED: sgd([g / scale for g in clip(grads, max_norm)])}
    used = clip(unscaled, max_norm) if mode == "clip" else unscaled
    return {UNSCALED_TWICE: sgd([g / scale for g in used])}


def true_grads(rng, shapes):
    return [randn(rng, *s, scale=0.01) for s in shapes]


SHAPES = [(4, 3), (3,), (2, 2, 2)]


def params_for(rng, shapes=SHAPES):
    return [randn(rng, *s) for s in shapes]


# ---------------------------------------------------------------------------- construction, scale_loss


def test_defaults_and_settings(submission):
    """LossScaler() starts at 65536.0 with counter 0; init_scale is kept, rounded to float32."""
    assert_close(submission.LossScaler().scale, 65536.0, what="LossScaler().scale")
    assert_close(submission.LossScaler().growth_tracker, 0, what="LossScaler().growth_tracker")
    assert_close(submission.LossScaler(init_scale=3.0).scale, 3.0, what="LossScaler(init_scale=3.0).scale")
    assert_close(
        submission.LossScaler(init_scale=0.1).scale,
        f32(0.1),
        rtol=1e-6,
        atol=0.0,
        what="LossScaler(init_scale=0.1).scale",
    )


def test_scale_loss(submission):
    """scale_loss multiplies by the scale as a float32 tensor: half losses give float32, float64 stays."""
    scaler = submission.LossScaler()
    oracle = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        loss = torch.tensor(3.25, dtype=dtype)
        name = str(dtype).removeprefix("torch.")
        assert_close(
            scaler.call("scale_loss", loss),
            oracle.scale(loss),
            what=f"scale_loss(loss) of a {name} loss at scale 2^16",
            hint="multiply by torch.tensor(scale, dtype=torch.float32): the product is float32 (float64 for "
            "a float64 loss)",
            misconceptions={
                "the scaled loss was kept in the loss's dtype: multiply by a float32 tensor of the scale": (
                    loss * 2.0**16
                ),
            },
        )
    assert_close(scaler.scale, 65536.0, what="the scale after scale_loss (it must not change)")


# ---------------------------------------------------------------------------- unscale


@pytest.mark.parametrize("init", [pytest.param(2.0**10, id="scale-1024"), pytest.param(3.0, id="scale-3")])
def test_unscale_matches_gradscaler(submission, rng, init):
    """unscale on several gradients (one of them None) equals GradScaler.unscale_'s gradients."""
    grads = [randn(rng, 5, 4, scale=init), None, randn(rng, 7, scale=init), randn(rng, 2, 3, scale=init)]
    params = [torch.zeros(5, 4), torch.zeros(2), torch.zeros(7), torch.zeros(2, 3)]
    _, want, _ = Oracle(params, 0.1, init_scale=init).iterate(grads, "unscale")
    got, found_inf = submission.LossScaler(init_scale=init).call("unscale", grads)
    expect(found_inf is False, "found_inf must be the Python bool False when every gradient is finite")
    assert_close(
        got,
        want,
        what="the unscaled gradients",
        misconceptions={
            NOT_UNSCALED: grads,
            "multiplied by the scale instead of dividing by it?": [
                None if g is None else g * init for g in grads
            ],
        },
    )


@pytest.mark.parametrize(
    ("value", "where"),
    [
        pytest.param(INF, 0, id="inf-first-gradient"),
        pytest.param(-INF, 2, id="minus-inf-last-gradient"),
        pytest.param(NAN, 1, id="nan-middle-gradient"),
    ],
)
def test_unscale_finds_nonfinite(submission, rng, value, where):
    """One inf, -inf or NaN in one element of one gradient: found_inf is True, the value stays."""
    grads = [randn(rng, 3, 4, scale=64.0), randn(rng, 5, scale=64.0), randn(rng, 2, 2, scale=64.0)]
    grads[where].view(-1)[3] = value
    got, found_inf = submission.LossScaler(init_scale=64.0).call("unscale", grads)
    expect(
        found_inf is True,
        "found_inf must be the Python bool True when any element of any gradient is inf, -inf or NaN",
        hint="check every element of every gradient (torch.isfinite(g).all() for each g), not only the loss "
        "or the first gradient",
    )
    assert_close(
        got, [g / 64.0 for g in grads], what="the unscaled gradients (non-finite values kept)", equal_nan=True
    )


def test_unscale_leaves_inputs(submission, rng):
    """unscale returns new tensors and leaves the gradients it was given as they were."""
    grads = [randn(rng, 4, 4, scale=256.0), randn(rng, 6, scale=256.0)]
    scaler = submission.LossScaler(init_scale=256.0)
    got, _ = call_unchanged(scaler.unscale, grads, names=("grads",), what="unscale")
    assert_close(got, [g / 256.0 for g in grads], what="the unscaled gradients")


def test_step_leaves_inputs(submission, rng):
    """step returns new parameters and leaves the parameters and gradients it was given alone."""
    params, grads = params_for(rng), [g * 256.0 for g in true_grads(rng, SHAPES)]
    scaler = submission.LossScaler(init_scale=256.0)
    got, took = call_unchanged(scaler.step, params, grads, 0.1, names=("params", "grads", "lr"), what="step")
    expect(took is True, "step() must return stepped=True for finite gradients")
    _, _, want = Oracle(params, 0.1, init_scale=256.0).iterate(grads)
    assert_close(got, want, what="the parameters after the step", rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- step, skip, update


def test_skipped_step_keeps_params(submission, rng):
    """A NaN gradient: step returns stepped=False and the parameters exactly as they were."""
    params = params_for(rng)
    grads = [g * 1024.0 for g in true_grads(rng, SHAPES)]
    grads[1][0] = NAN
    scaler = submission.LossScaler(init_scale=1024.0)
    got, took = scaler.call("step", params, grads, 0.1)
    expect(took is False, "step() must return stepped=False when a gradient holds NaN", hint=STEPPED_ON_INF)
    assert_close(got, params, what="the parameters after a skipped step", hint=STEPPED_ON_INF)


@pytest.mark.parametrize(
    "backoff", [pytest.param(0.5, id="backoff-0.5"), pytest.param(0.25, id="backoff-0.25")]
)
def test_backoff_on_overflow(submission, rng, backoff):
    """Three overflows in a row, then finite steps: the scale is multiplied by backoff_factor each time."""
    plan = [(true_grads(rng, SHAPES), [(i % 3, INF if i % 2 else NAN)], "step") for i in range(3)]
    plan += [(true_grads(rng, SHAPES), [], "step") for _ in range(2)]
    drive(submission, params_for(rng), plan, backoff_factor=backoff, growth_interval=4)


@pytest.mark.parametrize("interval", [pytest.param(n, id=f"interval-{n}") for n in (1, 3, 5)])
def test_growth_at_exact_interval(submission, rng, interval):
    """growth_interval finite steps grow the scale on the last one's update, and again after as many."""
    plan = [(true_grads(rng, SHAPES), [], "step") for _ in range(2 * interval + 1)]
    drive(submission, params_for(rng), plan, init_scale=16.0, growth_interval=interval)


def test_counter_resets_after_skip(submission, rng):
    """Interval 3: two finite steps, a skip, two finite steps (no growth yet), then a third (growth)."""
    poison = [[], [], [(0, INF)], [], [], [], [(2, NAN)], [], []]
    plan = [(true_grads(rng, SHAPES), p, "step") for p in poison]
    drive(submission, params_for(rng), plan, init_scale=32.0, growth_interval=3)


def test_no_growth_past_float32(submission, rng):
    """At scale 2^127 a growth would overflow float32: the scale stays, the counter still resets."""
    plan = [(true_grads(rng, SHAPES), [], "step") for _ in range(3)]
    drive(submission, params_for(rng), plan, init_scale=2.0**127, growth_interval=1)


def test_other_factors(submission, rng):
    """growth_factor 3, backoff_factor 0.3, init_scale 5: scales rounded to float32, as GradScaler's."""
    poison = [[], [], [(1, INF)], [], [], [], [(0, NAN)], [(2, -INF)], [], []]
    plan = [(true_grads(rng, SHAPES), p, "step") for p in poison]
    drive(
        submission,
        params_for(rng),
        plan,
        init_scale=5.0,
        growth_factor=3.0,
        backoff_factor=0.3,
        growth_interval=2,
    )


def test_finite_loss_overflowing_grads(submission, rng):
    """The loss is finite but a gradient overflowed: the step is still skipped (check the gradients)."""
    plan = [(true_grads(rng, SHAPES), [], "step"), (true_grads(rng, SHAPES), [(1, INF)], "step")]
    plan += [(true_grads(rng, SHAPES), [(2, NAN)], "step"), (true_grads(rng, SHAPES), [], "step")]
    drive(submission, params_for(rng), plan, init_scale=2.0**12, growth_interval=2)


# ---------------------------------------------------------------------------- unscale once, clip after


def test_unscale_clip_step(submission, rng):
    """unscale, clip the true gradients in the loop, then step: step must not unscale them again."""
    poison = [[], [], [(1, INF)], [], []]
    plan = [(true_grads(rng, SHAPES), p, "clip") for p in poison]
    plan[1] = (plan[1][0], [], "unscale")  # unscale without clipping, then step
    drive(submission, params_for(rng), plan, max_norm=0.02, init_scale=2.0**10, growth_interval=2)


def test_step_with_max_norm(submission, rng):
    """step(..., max_norm) clips the unscaled gradients as clip_grad_norm_ does, then steps."""
    params = params_for(rng)
    grads = [g * 512.0 for g in true_grads(rng, SHAPES)]
    _, _, want = Oracle(params, 0.5, init_scale=512.0).iterate(grads, "max_norm", 0.01)
    got, took = submission.LossScaler(init_scale=512.0).call("step", params, grads, 0.5, max_norm=0.01)
    expect(took is True, "step() must return stepped=True for finite gradients")
    clipped_scaled = clip(grads, 0.01)
    assert_close(
        got,
        want,
        what="the parameters after a step with max_norm=0.01",
        rtol=1e-5,
        atol=1e-6,
        misconceptions={
            CLIPPED_SCALED: [p - 0.5 * g / 512.0 for p, g in zip(params, clipped_scaled, strict=True)],
            "max_norm was ignored: clip the unscaled gradients to that total norm": [
                p - 0.5 * g / 512.0 for p, g in zip(params, grads, strict=True)
            ],
        },
    )
    plan = [(true_grads(rng, SHAPES), p, "max_norm") for p in ([], [(0, INF)], [], [])]
    drive(submission, params_for(rng), plan, lr=0.5, max_norm=0.01, init_scale=64.0, growth_interval=2)


def test_unscale_then_step_matches_once(submission, rng):
    """After unscale(), step() with those gradients gives the same parameters as step() alone."""
    params, grads = params_for(rng), [g * 2.0**14 for g in true_grads(rng, SHAPES)]
    scaler = submission.LossScaler(init_scale=2.0**14)
    unscaled, _ = scaler.call("unscale", grads)
    got, _ = scaler.call("step", params, unscaled, 1.0)
    _, _, want = Oracle(params, 1.0, init_scale=2.0**14).iterate(grads, "unscale")
    assert_close(
        got,
        want,
        what="the parameters after unscale() then step()",
        rtol=1e-5,
        atol=1e-6,
        misconceptions={
            UNSCALED_TWICE: [p - g / 2.0**28 for p, g in zip(params, grads, strict=True)],
        },
    )


# ---------------------------------------------------------------------------- misuse


def _unscale_twice(scaler, g):
    scaler.call("unscale", g)
    scaler.call("unscale", g)


def _unscale_after_step(scaler, g):
    scaler.call("step", [torch.zeros(3)], g, 0.1)
    scaler.call("unscale", g)


def _step_twice(scaler, g):
    scaler.call("step", [torch.zeros(3)], g, 0.1)
    scaler.call("step", [torch.zeros(3)], g, 0.1)


def _update_unchecked(scaler, g):
    scaler.call("scale_loss", torch.tensor(1.0))
    scaler.call("update")


MISUSES = {
    "unscale-twice": (_unscale_twice, "a second unscale() in one iteration"),
    "unscale-after-step": (_unscale_after_step, "unscale() after step() in one iteration"),
    "step-twice": (_step_twice, "a second step() in one iteration"),
    "update-unchecked": (_update_unchecked, "update() with no unscale() or step() since the last update"),
}


@pytest.mark.parametrize("case", [pytest.param(name, id=name) for name in MISUSES])
def test_misuse_raises(submission, case):
    """Unscaling twice, unscaling after step, stepping twice, or updating unchecked raises RuntimeError."""
    action, words = MISUSES[case]
    scaler = submission.LossScaler(init_scale=8.0)
    try:
        action(scaler, [torch.tensor([8.0, 16.0, 24.0])])
    except RuntimeError:
        return
    pytest.fail(f"{words} returned normally; it must raise RuntimeError")


def test_new_iteration_after_update(submission, rng):
    """After update(), unscale() and step() work again: four iterations of unscale then step."""
    plan = [(true_grads(rng, SHAPES), p, "unscale") for p in ([], [(2, NAN)], [], [])]
    drive(submission, params_for(rng), plan, init_scale=2.0**8, growth_interval=2)


# ---------------------------------------------------------------------------- random runs


def test_random_runs(submission, seed):
    """Random runs mixing plain steps, unscale + clip + step and max_norm steps, with random overflows."""

    def check(sizes, seed):
        gen = np.random.default_rng(seed)
        shapes = [(3, 2), (4,)]
        plan = []
        for _ in range(sizes["steps"]):
            poison = []
            if gen.random() < 0.3:
                poison = [(int(gen.integers(2)), [INF, -INF, NAN][int(gen.integers(3))])]
            mode = ["step", "clip", "max_norm", "unscale"][int(gen.integers(4))]
            plan.append((true_grads(gen, shapes), poison, mode))
        drive(
            submission,
            params_for(gen, shapes),
            plan,
            max_norm=0.01,
            init_scale=float(2 ** int(gen.integers(4, 17))),
            growth_interval=sizes["interval"],
        )

    shrink(check, {"steps": 24, "interval": 3}, seed=seed, minimum={"steps": 1, "interval": 1})
