"""Hidden tests for distillation-loss: random batches of both layouts against PyTorch's own functions
(shrunk to the smallest failing case), temperatures, alpha, ignore_index, padding rows, an
all-padding batch, large logits, dtypes, the student's gradient against autograd, a frozen teacher,
and inputs left unchanged.

The oracle is PyTorch on the trusted side: `F.kl_div(F.log_softmax(s / T), F.log_softmax(t / T),
log_target=True, reduction="batchmean")` on the kept rows times T^2, mixed with
`F.cross_entropy(s, labels, ignore_index=...)` (see `oracle`). The mistakes are computed by an
independent float64 formula with switches (see `formula`)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grader.testing import assert_close, assert_gradients_close, call_unchanged, dtype_params, expect, shrink

# one wording per mistake, the same as in the public tests
REVERSE = (
    "the loss matches KL(student || teacher): the soft term is KL(teacher || student), "
    "F.kl_div(log p_student, log p_teacher, log_target=True)"
)
NO_T2 = "the loss matches the soft term without its factor T^2: multiply the KL by temperature ** 2"
MEAN = (
    'the loss matches the KL divided by rows x V (reduction="mean"): divide by the number of kept rows '
    'only ("batchmean")'
)
PADDING = (
    "the loss matches the padding rows counted in the soft term: drop the rows whose label is "
    "ignore_index from the KL and from its row count"
)
PADDING_COUNT = (
    "the loss matches the kept rows' KL divided by the number of all rows, padding included: divide "
    "by the number of kept rows"
)
STUDENT_ONLY_T = (
    "the loss matches the temperature applied to the student's logits only: divide the teacher's logits "
    "by T too"
)
TEACHER_ONLY_T = (
    "the loss matches the temperature applied to the teacher's logits only: divide the student's logits "
    "by T too"
)
HARD_AT_T = "the loss matches the hard term at temperature T: the cross-entropy takes the raw student logits"
ALPHA_SWAPPED = (
    "the loss matches alpha on the hard term: alpha weights the soft term, 1 - alpha the hard term"
)
PROBS_INPUT = (
    "the loss matches F.kl_div given the student's probabilities: its first argument is the "
    "log-probabilities, F.log_softmax(student / T, dim=-1)"
)
FIXED_IGNORE = (
    "the loss matches ignore_index = -100 whatever the argument: drop the rows whose label equals the "
    "ignore_index given"
)
UNSTABLE = (
    "the loss is not finite on these logits: take F.log_softmax (it subtracts the maximum first), never "
    "torch.log(torch.softmax(...)), which is log(0) = -inf once a probability underflows"
)
ALL_PADDING_NAN = (
    "the loss of a batch whose labels are all ignore_index is NaN (0 / 0): it must be 0, for example "
    "divide the sums by max(n, 1)"
)
GRADIENT_HINT = (
    "the gradient of the student's logits is autograd's through alpha * T^2 * KL + (1 - alpha) * CE on the "
    "kept rows: build the loss from differentiable tensor operations (log_softmax, kl_div, cross_entropy)"
)
HALF = (torch.float16, torch.bfloat16)


# ---------------------------------------------------------------------------- inputs


def logits(rng, *shape, scale=2.0, dtype=torch.float32):
    return torch.from_numpy(rng.standard_normal(shape) * scale).to(dtype)


def make_labels(rng, shape, vocab, padding=0.3, ignore_index=-100):
    """Class ids in [0, vocab), about `padding` of them replaced by ignore_index; never all padding
    (the first row is kept) unless padding is 1."""
    labels = rng.integers(0, vocab, size=shape)
    pad = rng.random(shape) < padding
    pad.reshape(-1)[0] = padding >= 1.0
    labels[pad] = ignore_index
    return torch.from_numpy(labels).long()


def make_batch(rng, shape, vocab, dtype=torch.float32, padding=0.3, ignore_index=-100):
    """(student_logits, teacher_logits, labels), the teacher sharper than the student."""
    student = logits(rng, *shape, vocab, scale=1.5, dtype=dtype)
    teacher = logits(rng, *shape, vocab, scale=3.0, dtype=dtype)
    return student, teacher, make_labels(rng, shape, vocab, padding, ignore_index)


# ---------------------------------------------------------------------------- the oracle and the mistakes


def oracle(student_logits, teacher_logits, labels, temperature=2.0, alpha=0.5, ignore_index=-100):
    """PyTorch's answer: kl_div(batchmean) on the kept rows times T^2, mixed with cross_entropy; float32
    for float16, bfloat16 and float32 logits, float64 for float64; 0 for an all-padding batch."""
    vocab = student_logits.shape[-1]
    compute = torch.float64 if student_logits.dtype == torch.float64 else torch.float32
    s = student_logits.reshape(-1, vocab).to(compute)
    t = teacher_logits.detach().reshape(-1, vocab).to(compute)
    y = labels.reshape(-1)
    keep = y != ignore_index
    if not bool(keep.any()):
        return s.sum() * 0.0
    soft = temperature**2 * F.kl_div(
        F.log_softmax(s[keep] / temperature, dim=-1),
        F.log_softmax(t[keep] / temperature, dim=-1),
        log_target=True,
        reduction="batchmean",
    )
    hard = F.cross_entropy(s, y, ignore_index=ignore_index)
    return alpha * soft + (1 - alpha) * hard


def formula(
    student_logits,
    teacher_logits,
    labels,
    temperature=2.0,
    alpha=0.5,
    ignore_index=-100,
    *,
    reverse=False,
    t2=True,
    per_class=False,
    padding="drop",
    scaled="both",
    hard_at_t=False,
    alpha_swapped=False,
    probs_input=False,
):
    """The loss in float64 written out (no kl_div, no cross_entropy), with switches for the mistakes;
    returned in the oracle's dtype."""
    vocab = student_logits.shape[-1]
    s = student_logits.detach().reshape(-1, vocab).double()
    t = teacher_logits.detach().reshape(-1, vocab).double()
    y = labels.reshape(-1)
    keep = y != ignore_index
    kept = max(int(keep.sum()), 1)
    log_ps = torch.log_softmax(s / temperature if scaled in ("both", "student") else s, dim=-1)
    log_pt = torch.log_softmax(t / temperature if scaled in ("both", "teacher") else t, dim=-1)
    if probs_input:  # kl_div(input=p_student, target=log p_teacher): exp(target) * (target - input)
        rows = (log_pt.exp() * (log_pt - log_ps.exp())).sum(-1)
    elif reverse:
        rows = (log_ps.exp() * (log_ps - log_pt)).sum(-1)
    else:
        rows = (log_pt.exp() * (log_pt - log_ps)).sum(-1)
    if padding == "keep":
        kl = rows.sum() / rows.numel()
    elif padding == "count":
        kl = rows[keep].sum() / rows.numel()
    else:
        kl = rows[keep].sum() / kept
    if per_class:
        kl = kl / vocab
    soft = kl * temperature**2 if t2 else kl
    log_p = torch.log_softmax(s / temperature if hard_at_t else s, dim=-1)
    hard = -log_p[keep].gather(-1, y[keep].unsqueeze(-1)).sum() / kept
    a = 1 - alpha if alpha_swapped else alpha
    out = a * soft + (1 - a) * hard
    return out if student_logits.dtype == torch.float64 else out.float()


def mistakes(s, t, y, temperature=2.0, alpha=0.5, ignore_index=-100):
    """What each likely mistake returns on this batch: a submission that matches one is told which."""
    args = (s, t, y, temperature, alpha, ignore_index)
    found = {
        NO_T2: formula(*args, t2=False),
        REVERSE: formula(*args, reverse=True),
        MEAN: formula(*args, per_class=True),
        PADDING: formula(*args, padding="keep"),
        PADDING_COUNT: formula(*args, padding="count"),
        STUDENT_ONLY_T: formula(*args, scaled="student"),
        TEACHER_ONLY_T: formula(*args, scaled="teacher"),
        HARD_AT_T: formula(*args, hard_at_t=True),
        ALPHA_SWAPPED: formula(*args, alpha_swapped=True),
        PROBS_INPUT: formula(*args, probs_input=True),
    }
    if ignore_index != -100:
        found[FIXED_IGNORE] = formula(s, t, y, temperature, alpha, -100)
    return found


def tol(dtype):
    """Honest float32 formulations (kl_div or the sum written out, sum then divide or batchmean) agree
    within about 1e-6 relative on these sizes; float64 ones within 1e-14."""
    return {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-5}


def check(got, s, t, y, temperature=2.0, alpha=0.5, ignore_index=-100, *, what="the loss", hint="", **tols):
    expected = oracle(s, t, y, temperature, alpha, ignore_index)
    assert_close(
        got,
        expected,
        what=what,
        hint=hint,
        misconceptions=mistakes(s, t, y, temperature, alpha, ignore_index),
        **(tols or tol(expected.dtype)),
    )


# ---------------------------------------------------------------------------- against PyTorch


def test_random_rows(submission, seed):
    """(N, V) logits with random temperatures, alpha and padding rows, against PyTorch's functions."""

    def case(sizes, case_seed):
        rng = np.random.default_rng(case_seed)
        s, t, y = make_batch(rng, (sizes["rows"],), sizes["vocab"])
        temperature = float(rng.choice([0.5, 1.0, 2.0, 3.0, 5.0]))
        alpha = float(rng.uniform(0.1, 0.9))
        got = submission.distillation_loss(s, t, y, temperature=temperature, alpha=alpha)
        check(got, s, t, y, temperature, alpha)

    shrink(case, {"rows": 24, "vocab": 17}, seed=seed, minimum={"rows": 2, "vocab": 3})


def test_random_sequences(submission, seed):
    """(B, L, V) logits with (B, L) labels, the ends of the sequences padded, against PyTorch."""

    def case(sizes, case_seed):
        rng = np.random.default_rng(case_seed)
        shape = (sizes["batch"], sizes["length"])
        s, t, y = make_batch(rng, shape, sizes["vocab"], padding=0.1)
        for row in range(shape[0]):  # right padding of random length, never the first token
            y[row, int(rng.integers(1, shape[1] + 1)) :] = -100
        got = submission.distillation_loss(s, t, y, temperature=2.0, alpha=0.6)
        check(got, s, t, y, 2.0, 0.6)

    shrink(case, {"batch": 3, "length": 9, "vocab": 13}, seed=seed, minimum={"length": 2, "vocab": 3})


@pytest.mark.parametrize(
    "temperature",
    [pytest.param(1.0, id="T-1"), pytest.param(0.5, id="T-0.5"), pytest.param(4.0, id="T-4")],
)
def test_temperature(submission, rng, temperature):
    """T divides both sides' logits in the soft term, which is times T^2; the hard term is at T = 1."""
    s, t, y = make_batch(rng, (4, 6), 11)
    got = submission.distillation_loss(s, t, y, temperature=temperature, alpha=0.5)
    check(got, s, t, y, temperature, 0.5)


@pytest.mark.parametrize(
    "alpha",
    [pytest.param(0.0, id="alpha-0"), pytest.param(1.0, id="alpha-1"), pytest.param(0.2, id="alpha-0.2")],
)
def test_alpha(submission, rng, alpha):
    """alpha weights the soft term and 1 - alpha the hard term (alpha = 0: cross_entropy alone)."""
    s, t, y = make_batch(rng, (12,), 9)
    got = submission.distillation_loss(s, t, y, temperature=3.0, alpha=alpha)
    check(got, s, t, y, 3.0, alpha)


def test_custom_ignore_index(submission, rng):
    """ignore_index = 2, a valid class id: the rows labelled 2 are dropped from both terms."""
    s, t, _ = make_batch(rng, (3, 7), 6)
    y = torch.from_numpy(rng.integers(0, 6, size=(3, 7))).long()
    y[0, 0], y[1, :3] = 0, 2  # some rows kept, some dropped
    got = submission.distillation_loss(s, t, y, temperature=2.0, alpha=0.5, ignore_index=2)
    check(got, s, t, y, 2.0, 0.5, 2)


def test_padding_logits_do_not_matter(submission, rng):
    """The padding rows hold arbitrary (large) logits: the loss is that of the kept rows alone."""
    s, t, y = make_batch(rng, (2, 8), 10, padding=0.4)
    pad = y == -100
    s[pad] = logits(rng, int(pad.sum()), 10, scale=300.0)
    t[pad] = logits(rng, int(pad.sum()), 10, scale=300.0)
    got = submission.distillation_loss(s, t, y, temperature=2.0, alpha=0.5)
    check(got, s, t, y, 2.0, 0.5)


@pytest.mark.parametrize("shape", [pytest.param((5,), id="rows"), pytest.param((2, 4), id="sequences")])
def test_all_padding(submission, rng, shape):
    """A batch whose labels are all ignore_index gives a loss of 0 (not NaN), whatever alpha and T."""
    s, t, y = make_batch(rng, shape, 7, padding=1.0)
    got = submission.distillation_loss(s, t, y, temperature=3.0, alpha=0.3)
    nan = isinstance(got, torch.Tensor) and bool(torch.isnan(got).any())
    assert_close(
        got, torch.tensor(0.0), what="the loss of an all-padding batch", hint=ALL_PADDING_NAN if nan else ""
    )


def test_one_kept_row(submission, rng):
    """A batch with a single row that is not padding: both terms are that row's (divided by 1)."""
    s, t, y = make_batch(rng, (6,), 8)
    y[:] = -100
    y[3] = 5
    got = submission.distillation_loss(s, t, y, temperature=2.0, alpha=0.5)
    check(got, s, t, y, 2.0, 0.5)


@pytest.mark.parametrize("scale", [pytest.param(1e3, id="logits-1e3"), pytest.param(1e4, id="logits-1e4")])
def test_large_logits(submission, rng, scale):
    """float32 logits whose differences reach thousands: the loss is finite and right."""
    s, t, y = make_batch(rng, (10,), 12)
    s, t = s * scale, t * scale
    got = submission.distillation_loss(s, t, y, temperature=2.0, alpha=0.5)
    broken = isinstance(got, torch.Tensor) and not bool(torch.isfinite(got).all())
    check(got, s, t, y, 2.0, 0.5, hint=UNSTABLE if broken else "", rtol=1e-4, atol=1e-3)


# ---------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", dtype_params("float16", "bfloat16"))
def test_half_precision(submission, rng, dtype):
    """float16 and bfloat16 logits: the loss is computed in float32 and returned as float32."""
    s, t, y = make_batch(rng, (3, 8), 32, dtype=dtype)
    s = s * 4  # a few logits of size 20-40, as trained models give
    got = submission.distillation_loss(s, t, y, temperature=2.0, alpha=0.5)
    expect(isinstance(got, torch.Tensor), "distillation_loss must return a torch.Tensor")
    expect(
        got.dtype == torch.float32,
        f"the loss of {str(dtype).removeprefix('torch.')} logits must be float32",
        detail=f"got {str(got.dtype).removeprefix('torch.')}",
        hint="convert float16 and bfloat16 logits to float32 before computing the loss",
    )
    check(got, s, t, y, 2.0, 0.5)


def test_float64(submission, rng):
    """float64 logits give a float64 loss, with float64's precision."""
    s, t, y = make_batch(rng, (4, 5), 9, dtype=torch.float64)
    got = submission.distillation_loss(s, t, y, temperature=2.0, alpha=0.5)
    expect(
        isinstance(got, torch.Tensor) and got.dtype == torch.float64,
        "float64 logits must give a float64 loss",
        hint="only float16 and bfloat16 logits are converted to float32",
    )
    check(got, s, t, y, 2.0, 0.5)


# ---------------------------------------------------------------------------- gradients


@pytest.mark.parametrize(
    ("shape", "dtype", "temperature"),
    [
        pytest.param((12,), torch.float32, 2.0, id="rows-T-2"),
        pytest.param((3, 5), torch.float32, 0.5, id="sequences-T-0.5"),
        pytest.param((3, 5), torch.float16, 4.0, id="float16-T-4"),
    ],
)
def test_student_gradient(submission, rng, shape, dtype, temperature):
    """The gradient of the student's logits (0 on padding rows) against autograd through PyTorch's formula."""
    s, t, y = make_batch(rng, shape, 10, dtype=dtype)
    s.requires_grad_()
    got = submission.distillation_loss(s.detach(), t, y, temperature=temperature, alpha=0.4)
    check(got, s.detach(), t, y, temperature, 0.4)
    tols = {"rtol": 2e-3, "atol": 2e-3} if dtype in HALF else {"rtol": 1e-5, "atol": 1e-6}
    assert_gradients_close(
        submission.distillation_loss,
        oracle,
        (s, t, y),
        {"temperature": temperature, "alpha": 0.4},
        grad_output=torch.tensor(1.0),
        names=("student_logits",),
        hint=GRADIENT_HINT,
        **tols,
    )


def test_teacher_is_frozen(submission, rng):
    """teacher_logits that require grad get no gradient from the loss: the teacher is frozen."""
    s, t, y = make_batch(rng, (2, 6), 8)
    found = submission.distillation_loss.backward(
        s.requires_grad_(), t.requires_grad_(), y, temperature=2.0, alpha=0.5, grad_output=torch.tensor(1.0)
    )
    expect(len(found.inputs) == 2, "the loss must be differentiable with respect to student_logits")
    teacher_grad = found.inputs[1]
    frozen = teacher_grad is None or (isinstance(teacher_grad, torch.Tensor) and not bool(teacher_grad.any()))
    expect(
        frozen,
        "teacher_logits received a gradient from the loss; the teacher is frozen",
        hint="detach the teacher's logits (teacher_logits.detach()) before using them",
    )


# ---------------------------------------------------------------------------- inputs left unchanged


def test_inputs_unchanged(submission, rng):
    """distillation_loss leaves the logits and the labels it was given as they were."""
    s, t, y = make_batch(rng, (2, 6), 8)
    got = call_unchanged(
        submission.distillation_loss,
        s,
        t,
        y,
        names=("student_logits", "teacher_logits", "labels"),
        what="distillation_loss",
        hint="work on new tensors (student_logits / T, labels[keep]) instead of writing into the ones given",
        temperature=2.0,
        alpha=0.5,
    )
    check(got, s, t, y, 2.0, 0.5)
