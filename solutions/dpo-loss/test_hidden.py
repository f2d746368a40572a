"""Hidden tests for dpo-loss: generated preference batches against the formula (shrunk to the
smallest failing case), beta, masks of every length, positions outside the masks, numerical
stability at large margins, gradients through the runner, detached rewards, and inputs left unchanged.

Results are compared with the exact values (computed in float64 from the same log-probs), within a
tolerance derived from the precision of the computation and the size of the sums involved: see
`allowed_error`. A computation at least as precise as the reference's always passes."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grader.testing import (
    GradingFailure,
    Mismatch,
    assert_close,
    assert_invariant,
    call_unchanged,
    compare,
    expect,
    local_gradients,
    shrink,
)

NAMES = ("loss", "chosen_rewards", "rejected_rewards")
MASK_IGNORED = "summed over padding/prompt tokens too? sum only where the mask is True"
MEAN = "averaged over tokens instead of summed? log p(response) is the sum of its tokens' log-probs"
UNSTABLE = (
    "log(sigmoid(x)) overflows: sigmoid of a large negative margin underflows to 0 and its log is "
    "-inf. Use F.logsigmoid(x) (or F.softplus(-x) for -logsigmoid(x))"
)


# ---------------------------------------------------------------------------- preference batches


def masks(rng, batch, t_chosen, t_rejected):
    """Response masks: row i has a shared prompt of p_i tokens, then a chosen response of at least
    one token and a rejected one of at least one token, each right-padded to its length."""
    chosen = np.zeros((batch, t_chosen), dtype=bool)
    rejected = np.zeros((batch, t_rejected), dtype=bool)
    for i in range(batch):
        prompt = int(rng.integers(0, min(t_chosen, t_rejected)))
        chosen[i, prompt : prompt + int(rng.integers(1, t_chosen - prompt + 1))] = True
        rejected[i, prompt : prompt + int(rng.integers(1, t_rejected - prompt + 1))] = True
    return torch.from_numpy(chosen), torch.from_numpy(rejected)


def token_logps(rng, batch, length, prompt_from=None, prompts=None):
    """Per-token log-probabilities (<= 0); the first prompts[i] columns of row i copy `prompt_from`
    when given, since the prompt is the same text before the chosen and the rejected response (and
    only the prompt: the responses differ from their first token on)."""
    x = -rng.exponential(1.5, size=(batch, length))
    if prompt_from is not None:
        for i, n in enumerate(prompts):
            x[i, :n] = prompt_from[i, :n]
    return x


def make_batch(batch, t_chosen, t_rejected, seed, dtype=torch.float32):
    """(policy_chosen, policy_rejected, ref_chosen, ref_rejected, chosen_mask, rejected_mask).
    Positions outside the masks hold other values (the prompt's log-probs, and arbitrary numbers
    in the padding), as real batches do."""
    rng = np.random.default_rng(seed)
    chosen_mask, rejected_mask = masks(rng, batch, t_chosen, t_rejected)
    prompts = chosen_mask.int().argmax(-1).tolist()  # the first response token of each row
    pc = token_logps(rng, batch, t_chosen)
    pr = token_logps(rng, batch, t_rejected, prompt_from=pc, prompts=prompts)
    rc = token_logps(rng, batch, t_chosen)
    rr = token_logps(rng, batch, t_rejected, prompt_from=rc, prompts=prompts)
    tensors = [torch.from_numpy(x).to(dtype) for x in (pc, pr, rc, rr)]
    return (*tensors, chosen_mask, rejected_mask)


def garbage_outside(rng, args, value=None):
    """The same batch with other numbers (or `value`) at every position outside the masks."""
    pc, pr, rc, rr, cm, rm = args
    out = []
    for x, m in ((pc, cm), (pr, rm), (rc, cm), (rr, rm)):
        other = torch.from_numpy(rng.uniform(-30.0, 0.0, size=tuple(x.shape))).to(x.dtype)
        if value is not None:
            other = torch.full_like(x, value)
        out.append(torch.where(m, x, other))
    return (*out, cm, rm)


# ---------------------------------------------------------------------------- the formula and its mistakes


def sequence(x, mask, how="sum"):
    x = x.detach().double()
    if how == "all":  # mask ignored
        return x.sum(-1)
    total = torch.where(mask, x, torch.zeros_like(x)).sum(-1)
    return total / mask.sum(-1) if how == "mean" else total


def formula(args, beta=0.1, *, how="sum", beta_outside=False, swapped=False, ref_swapped=False, batch="mean"):
    """(loss, chosen_rewards, rejected_rewards) in float64, with knobs for the usual mistakes."""
    pc, pr, rc, rr, cm, rm = args
    chosen = sequence(pc, cm, how) - sequence(rc, cm, how)
    rejected = sequence(pr, rm, how) - sequence(rr, rm, how)
    if ref_swapped:
        chosen, rejected = -chosen, -rejected
    margin = rejected - chosen if swapped else chosen - rejected
    losses = -beta * F.logsigmoid(margin) if beta_outside else -F.logsigmoid(beta * margin)
    loss = losses.sum() if batch == "sum" else losses.mean()
    return loss, beta * chosen, beta * rejected


def cast(result, dtype):
    return tuple(x.to(dtype) for x in result)


def mistakes(args, beta=0.1):
    """The results of the likely mistakes, in the inputs' dtype, most likely first."""
    dtype = args[0].dtype
    found = {
        MASK_IGNORED: formula(args, beta, how="all"),
        MEAN: formula(args, beta, how="mean"),
        "beta applied outside the sigmoid? the loss is -logsigmoid(beta * margin)": formula(
            args, beta, beta_outside=True
        ),
        "chosen and rejected swapped? the margin is chosen_reward - rejected_reward": formula(
            args, beta, swapped=True
        ),
        "policy and reference swapped? the reward is beta * (policy - reference)": formula(
            args, beta, ref_swapped=True
        ),
        "loss summed over the batch instead of averaged?": formula(args, beta, batch="sum"),
    }
    return {label: cast(result, dtype) for label, result in found.items()}


# ---------------------------------------------------------------------------- the tolerance

# A masked sum of log-probs, computed in the inputs' dtype in any order (and the differences and
# the scaling by beta after it), lands within a few eps x (the sum of the |log-probs| it adds) of
# the exact value; the loss adds the error of its margins (its slope is sigmoid(-margin) <= 1) and
# its own rounding. Over 600 generated batches (up to 40 tokens, beta up to 2) the reference and
# three other honest formulations stay within 2.5 of these units; 8 leaves room, while every mistake
# below lands orders of magnitude further away.
ROUNDING_UNITS = 8
ALLOWED = "allowed 8 x eps of the dtype x beta x the sum of |log-probs| over the responses"


def magnitude(x, mask):
    return torch.where(mask, x.detach().double().abs(), torch.zeros((), dtype=torch.float64)).sum(-1)


def allowed_error(args, beta=0.1):
    """The exact (loss, chosen_rewards, rejected_rewards) in float64, and how far from each a
    correct computation in the inputs' dtype may land (per element)."""
    pc, pr, rc, rr, cm, rm = args
    units = ROUNDING_UNITS * torch.finfo(pc.dtype).eps
    loss, chosen, rejected = formula(args, beta)
    tol_chosen = units * abs(beta) * (magnitude(pc, cm) + magnitude(rc, cm))
    tol_rejected = units * abs(beta) * (magnitude(pr, rm) + magnitude(rr, rm))
    tol_loss = (tol_chosen + tol_rejected).mean() + units * loss.abs()
    return (loss, chosen, rejected), (tol_loss, tol_chosen, tol_rejected)


def within(got, wrong, tol):
    """Whether `got` reproduces `wrong`: the same shape and dtype, and values within `tol` or within
    the default tolerance of `wrong`'s dtype (a mistake made in float32 is rounded as float32 is)."""
    if not isinstance(got, torch.Tensor) or not isinstance(wrong, torch.Tensor):
        return False
    if compare(got, wrong) is None:
        return True
    if got.shape != wrong.shape or got.dtype != wrong.dtype:
        return False
    return bool(((got.detach().double() - wrong.detach().double()).abs() <= tol).all())


def assert_within(got, exact, tol, dtype, *, what, hint="", misconceptions=None):
    """`got` against the float64 value `exact`: type, shape and `dtype` strictly, values within
    `tol` (per element). A misconception that `got` reproduces becomes the hint."""
    mismatch = compare(got, exact.to(dtype), rtol=0.0, atol=math.inf)  # type, shape, dtype, NaN
    if mismatch is None:
        diff = (got.detach().double() - exact).abs()
        bad = ~(diff <= tol)
        if bool(bad.any()):
            at = tuple(int(i) for i in bad.nonzero()[0])
            mismatch = Mismatch(
                f"has values that differ beyond tolerance ({ALLOWED})",
                f"{int(bad.sum())} of {bad.numel()} values differ beyond tolerance (first at index {at})",
                f"got {got[at].item()!r}, expected {exact[at].item()!r} "
                f"(allowed difference {torch.broadcast_to(tol, exact.shape)[at].item():.3g})",
            )
    if mismatch is None:
        return
    for label, wrong in (misconceptions or {}).items():
        if within(got, wrong, tol):
            hint = label
            break
    raise GradingFailure(mismatch.describe(what), detail=mismatch.explained(), hint=hint)


def check_result(got, args, beta=0.1, found=None, *, hint=""):
    """Compare (loss, chosen_rewards, rejected_rewards) with the exact values for the batch `args`,
    item by item, naming a likely mistake."""
    expect(
        isinstance(got, tuple) and len(got) == 3,
        "dpo_loss must return a tuple of 3 items: (loss, chosen_rewards, rejected_rewards)",
    )
    exact, tols = allowed_error(args, beta)
    for i, name in enumerate(NAMES):
        assert_within(
            got[i],
            exact[i],
            tols[i],
            args[0].dtype,
            what=name,
            hint=hint,
            misconceptions={label: m[i] for label, m in (found or {}).items()},
        )


def not_finite(got):
    """Whether a result holds inf or NaN (the likely cause is then an unstable formula)."""
    return isinstance(got, tuple) and any(
        isinstance(x, torch.Tensor) and x.is_floating_point() and not bool(torch.isfinite(x).all())
        for x in got
    )


# ---------------------------------------------------------------------------- gradient helpers

POLICY = ("policy_chosen_logps", "policy_rejected_logps")


def trusted_dpo(pc, pr, rc, rr, cm, rm, beta=0.1):
    """The DPO loss, written out here so that autograd runs on the very tensors it is given (the
    `reference` fixture calls the reference on copies of its arguments, whose gradients are lost)."""

    def seq(x, m):
        return torch.where(m, x, torch.zeros_like(x)).sum(-1)

    chosen = beta * (seq(pc, cm) - seq(rc, cm))
    rejected = beta * (seq(pr, rm) - seq(rr, rm))
    return -F.logsigmoid(chosen - rejected).mean(), chosen.detach(), rejected.detach()


GRADIENT_HINT = (
    "the gradient reaches only the response tokens (0 at the prompt and the padding): "
    "-beta * sigmoid(-margin) / B on each chosen token, +beta * sigmoid(-margin) / B on each rejected one"
)


def check_gradients(submission, args, kwargs, grad_output, *, hint=GRADIENT_HINT, rtol=None):
    """Backward through the submission in the sandbox and through `trusted_dpo` locally, from
    `grad_output`; compare the results and the gradients of the policy log-probs.

    (Not assert_gradients_close: its local side turns a tuple output into a list, which never
    matches the submission's tuple.)"""
    found = submission.dpo_loss.backward(*args, grad_output=grad_output, **kwargs)
    _, grads, _ = local_gradients(trusted_dpo, args, kwargs, grad_output)
    beta = kwargs.get("beta", 0.1)
    check_result(found.output, args, beta, mistakes(args, beta))
    assert_close(len(found.inputs), len(grads), what="the number of input gradients")
    for name, got, want in zip(POLICY, found.inputs, grads, strict=True):
        assert_close(got, want, what=f"the gradient of {name}", rtol=rtol, hint=hint)


# ---------------------------------------------------------------------------- sequence_logps


def test_sequence_logps(submission, seed):
    """sequence_logps on random masks: the sum of the log-probs where the mask is True, per row."""

    def check(sizes, case_seed):
        args = make_batch(sizes["batch"], sizes["length"], sizes["length"], case_seed)
        x, mask = args[0], args[4]
        assert_within(
            submission.sequence_logps(x, mask),
            sequence(x, mask),
            ROUNDING_UNITS * torch.finfo(x.dtype).eps * magnitude(x, mask),
            x.dtype,
            what="sequence_logps",
            misconceptions={
                MASK_IGNORED: sequence(x, mask, "all").float(),
                MEAN: sequence(x, mask, "mean").float(),
                "mask convention inverted? True marks the response tokens": sequence(x, ~mask).float(),
            },
        )

    shrink(check, {"batch": 6, "length": 12}, seed=seed)


# ---------------------------------------------------------------------------- the loss


def test_against_the_formula(submission, seed):
    """Random preference batches: prompts, responses and padding of different lengths in every row,
    and chosen and rejected padded to different lengths."""

    def check(sizes, case_seed):
        args = make_batch(sizes["batch"], sizes["chosen_length"], sizes["rejected_length"], case_seed)
        got = submission.dpo_loss(*args)
        check_result(got, args, 0.1, mistakes(args))

    shrink(
        check,
        {"batch": 8, "chosen_length": 14, "rejected_length": 10},
        seed=seed,
        minimum={"chosen_length": 2, "rejected_length": 2},
    )


@pytest.mark.parametrize(
    "beta",
    [
        pytest.param(0.01, id="beta-0.01"),
        pytest.param(0.5, id="beta-0.5"),
        pytest.param(2.0, id="beta-2"),
    ],
)
def test_beta(submission, rng, beta):
    """beta scales the implicit rewards, and so the margin inside the sigmoid."""
    args = make_batch(6, 12, 12, int(rng.integers(1 << 31)))
    got = submission.dpo_loss(*args, beta=beta)
    found = mistakes(args, beta)
    found["beta ignored? use the beta given (the default is only 0.1)"] = cast(
        formula(args, 0.1), torch.float32
    )
    check_result(got, args, beta, found)


def test_batch_of_one(submission, rng):
    """A batch of a single pair: the loss is that pair's -logsigmoid(margin)."""
    args = make_batch(1, 9, 7, int(rng.integers(1 << 31)))
    check_result(submission.dpo_loss(*args), args, 0.1, mistakes(args))


def test_float64(submission, rng):
    """float64 log-probabilities give float64 results."""
    args = make_batch(5, 10, 12, int(rng.integers(1 << 31)), dtype=torch.float64)
    found = mistakes(args)
    found["computed in float32? float64 inputs give float64 results"] = cast(formula(args), torch.float32)
    check_result(submission.dpo_loss(*args), args, 0.1, found)


def test_policy_equal_to_reference(submission, rng):
    """Before training the policy is the reference: every reward is 0 and the loss is log 2."""
    pc, pr, _, _, cm, rm = make_batch(7, 11, 9, int(rng.integers(1 << 31)))
    got = submission.dpo_loss(pc, pr, pc, pr, cm, rm)
    check_result(
        got,
        (pc, pr, pc, pr, cm, rm),
        0.1,
        {
            "beta applied outside the sigmoid? the loss is -logsigmoid(beta * margin)": (
                torch.tensor(0.1 * math.log(2.0)),
                torch.zeros(7),
                torch.zeros(7),
            )
        },
        hint="with policy = reference the log-ratios are 0, the margin is 0 and -logsigmoid(0) = log 2",
    )


# ---------------------------------------------------------------------------- masks


def test_positions_outside_the_masks_do_not_matter(submission, rng):
    """Changing the log-probs of prompt and padding positions changes nothing."""
    args = make_batch(6, 12, 10, int(rng.integers(1 << 31)))
    assert_invariant(
        lambda batch: submission.dpo_loss(*batch),
        (),
        {
            "the original batch": {"batch": args},
            "other numbers outside the masks": {"batch": garbage_outside(rng, args)},
        },
        rtol=1e-5,
        atol=1e-6,
        what="(loss, chosen_rewards, rejected_rewards)",
        hint="only the response tokens count: sum the log-probs where the mask is True, nowhere else",
    )


def test_padding_may_hold_minus_inf(submission, rng):
    """Positions outside the masks may hold -inf (the log-prob of a padding token can be): no NaN."""
    args = garbage_outside(rng, make_batch(5, 10, 10, int(rng.integers(1 << 31))), value=-math.inf)
    got = submission.dpo_loss(*args)
    hint = ""
    if not_finite(got):
        hint = (
            "a -inf outside the masks reached the result: those positions must not count at all. "
            "Select with torch.where(mask, logps, 0) or logps.masked_fill(~mask, 0) before summing "
            "(multiplying by the mask gives -inf * 0 = NaN)"
        )
    finite = {label: m for label, m in mistakes(args).items() if not not_finite(m)}  # -inf - -inf is NaN
    check_result(got, args, 0.1, finite, hint=hint)


# ---------------------------------------------------------------------------- stability


def large_margins(dtype=torch.float32):
    """Six pairs whose margins (beta = 1) are 1e4, -1e4, -200, 200, -90 and 0.5."""
    margins = [1e4, -1e4, -200.0, 200.0, -90.0, 0.5]
    batch, t = len(margins), 8
    mask = torch.ones(batch, t, dtype=torch.bool)
    mask[:, :2] = False  # a prompt of two tokens
    pc = torch.full((batch, t), -1.0, dtype=dtype)
    rc = pc.clone()
    rr = torch.full((batch, t), -2.0, dtype=dtype)
    pr = rr.clone()
    pr[:, 2:] -= torch.tensor(margins, dtype=dtype).unsqueeze(1) / (t - 2)  # log-ratio -margin, over 6 tokens
    return pc, pr, rc, rr, mask, mask.clone()


def test_large_margins(submission):
    """Margins of +-1e4, +-200 and -90 in float32: the loss is finite and exact (-logsigmoid(-1e4) = 1e4)."""
    args = large_margins()
    got = submission.dpo_loss(*args, beta=1.0)
    check_result(got, args, 1.0, mistakes(args, 1.0), hint=UNSTABLE if not_finite(got) else "")


def test_large_margin_gradients(submission):
    """At margins of +-1e4 the gradients are finite (between -1/B and 1/B per response token), never NaN."""
    pc, pr, rc, rr, cm, rm = large_margins()
    found = submission.dpo_loss.backward(
        pc.requires_grad_(), pr.requires_grad_(), rc, rr, cm, rm, beta=1.0, grad_output=torch.tensor(1.0)
    )
    grads = found.inputs
    finite = len(grads) == 2 and all(
        isinstance(g, torch.Tensor) and bool(torch.isfinite(g).all()) for g in grads
    )
    expect(finite, "the gradients of the policy log-probs are not finite at large margins", hint=UNSTABLE)
    check_gradients(
        submission,
        (pc, pr, rc, rr, cm, rm),
        {"beta": 1.0},
        torch.tensor(1.0),
        rtol=1e-5,
    )


# ---------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("beta", [pytest.param(0.1, id="beta-0.1"), pytest.param(1.0, id="beta-1")])
def test_gradients(submission, rng, beta):
    """Backward from the loss: the gradients of the policy log-probs, per token (0 outside the masks)."""
    pc, pr, rc, rr, cm, rm = make_batch(6, 12, 9, int(rng.integers(1 << 31)))
    check_gradients(
        submission,
        (pc.requires_grad_(), pr.requires_grad_(), rc, rr, cm, rm),
        {"beta": beta},
        torch.tensor(1.0),
    )


def test_gradients_at_margin_zero(submission, rng):
    """Policy = reference (the first step of DPO): every margin is 0, and the gradient is
    -beta * sigmoid(0) / B = -beta / (2B) on every chosen response token (+ on the rejected ones)."""
    pc, pr, _, _, cm, rm = make_batch(6, 12, 9, int(rng.integers(1 << 31)))
    check_gradients(
        submission,
        (pc.clone().requires_grad_(), pr.clone().requires_grad_(), pc, pr, cm, rm),
        {"beta": 0.1},
        torch.tensor(1.0),
        hint="at a margin of 0 the slope of -logsigmoid is -sigmoid(0) = -1/2: a hand-written "
        "min(m, 0) - log1p(exp(-|m|)) gets it wrong there (autograd takes one side of the kinks of "
        "min and abs); use F.logsigmoid",
    )


def test_rewards_are_detached(submission, rng):
    """chosen_rewards and rejected_rewards are for logging: backpropagating through them moves nothing."""
    pc, pr, rc, rr, cm, rm = make_batch(5, 10, 10, int(rng.integers(1 << 31)))
    ones = torch.ones(5)
    check_gradients(
        submission,
        (pc.requires_grad_(), pr.requires_grad_(), rc, rr, cm, rm),
        {},
        (torch.tensor(1.0), ones, ones),
        hint="return the rewards detached (chosen_rewards.detach()): only the loss carries a gradient",
    )


# ---------------------------------------------------------------------------- inputs left unchanged

UNCHANGED_HINT = (
    "select with torch.where(mask, logps, 0) or logps.masked_fill(~mask, 0), which make new tensors; "
    "masked_fill_ and logps[~mask] = 0 write into the caller's log-probs"
)


def test_sequence_logps_leaves_its_inputs_unchanged(submission, rng):
    """sequence_logps returns a new tensor and leaves the log-probs and the mask it was given as they were."""
    pc, _, _, _, cm, _ = make_batch(4, 10, 10, int(rng.integers(1 << 31)))
    got = call_unchanged(
        submission.sequence_logps,
        pc,
        cm,
        names=("token_logps", "mask"),
        what="sequence_logps",
        hint=UNCHANGED_HINT,
    )
    # only the result's type here: the values are checked in test_sequence_logps (float32, random masks)
    expect(isinstance(got, torch.Tensor), "sequence_logps must return a torch.Tensor")


def test_dpo_loss_leaves_its_inputs_unchanged(submission, rng):
    """dpo_loss leaves the log-probs and the masks it was given as they were."""
    args = make_batch(4, 10, 8, int(rng.integers(1 << 31)))
    got = call_unchanged(
        submission.dpo_loss,
        *args,
        names=(
            "policy_chosen_logps",
            "policy_rejected_logps",
            "ref_chosen_logps",
            "ref_rejected_logps",
            "chosen_mask",
            "rejected_mask",
        ),
        what="dpo_loss",
        hint=UNCHANGED_HINT,
    )
    # only the result's type here: the values are checked in test_against_the_formula (float32, beta 0.1)
    expect(
        isinstance(got, tuple) and len(got) == 3,
        "dpo_loss must return a tuple of 3 items: (loss, chosen_rewards, rejected_rewards)",
    )
