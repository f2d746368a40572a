"""Public tests: the worked examples of the lesson and other small cases you can check by hand.

Run them with `grader test layernorm norms.py`.
"""

import torch

from grader.testing import assert_close, expect

ONES4, ZEROS4 = torch.ones(4), torch.zeros(4)
UNBIASED_LN = (
    "unbiased variance? LayerNorm divides the squared deviations by d, not d - 1 "
    "(x.var() is unbiased by default: pass correction=0)"
)
EPS_OUTSIDE = "eps added outside the square root? It goes inside: (x - mean) / sqrt(var + eps)"
RUNNING_VAR_BIASED = (
    "running variance updated with the biased batch variance? It tracks the unbiased one: "
    "batch_var * n / (n - 1)"
)
MOMENTUM_SWAPPED = (
    "momentum applied the other way round? new = (1 - momentum) * running + momentum * batch_stat"
)
LN_WHOLE = "normalised over the whole tensor? Take the mean and variance over the last dim only (dim=-1)"
LN_FIRST_DIM = (
    "normalised over the first dim? LayerNorm takes the mean and variance over the last dim (dim=-1)"
)
BN_NORMALISED_UNBIASED = (
    "normalised with the unbiased variance? The batch is normalised with the biased one (divide by n); "
    "only the running variance uses n - 1"
)
RUNNING_IN_TRAINING = (
    "running statistics used in training? With training=True normalise with the batch's own mean and variance"
)
EVAL_BATCH_STATS = (
    "batch statistics in eval mode? With training=False normalise with running_mean and running_var"
)


def test_layer_norm_worked_example(submission):
    """x = [2, 4, 6, 8]: mean 5, biased variance 5; weight [1, 2, 1, 0.5] and bias [0, 0, 1, 1]."""
    x = torch.tensor([2.0, 4.0, 6.0, 8.0])
    w = torch.tensor([1.0, 2.0, 1.0, 0.5])
    b = torch.tensor([0.0, 0.0, 1.0, 1.0])
    normalised = torch.tensor([-1.341638, -0.447213, 0.447213, 1.341638])
    unbiased = torch.tensor([-1.161894, -0.387298, 0.387298, 1.161894])
    assert_close(
        submission.layer_norm(x, w, b),
        normalised * w + b,
        misconceptions={
            UNBIASED_LN: unbiased * w + b,
            "the weight and bias were ignored? Finish with * weight + bias": normalised,
            "the bias was added before the weight? Finish with * weight + bias, in that order": (
                normalised + b
            )
            * w,
        },
    )


def test_layer_norm_each_row_on_its_own(submission):
    """[[2, 4, 6, 8], [1, 1, 1, 5]]: each row is normalised with its own mean and variance."""
    x = torch.tensor([[2.0, 4.0, 6.0, 8.0], [1.0, 1.0, 1.0, 5.0]])
    # row 2: mean 2, deviations [-1, -1, -1, 3], biased variance 3
    expected = torch.tensor(
        [[-1.341638, -0.447213, 0.447213, 1.341638], [-0.577349, -0.577349, -0.577349, 1.732048]]
    )
    whole = (x - x.mean()) / (x.var(correction=0) + 1e-5).sqrt()
    columns = (x - x.mean(0)) / (x.var(0, correction=0) + 1e-5).sqrt()
    unbiased = torch.tensor([[-1.161894, -0.387298, 0.387298, 1.161894], [-0.5, -0.5, -0.5, 1.5]])
    assert_close(
        submission.layer_norm(x, ONES4, ZEROS4),
        expected,
        misconceptions={LN_WHOLE: whole, LN_FIRST_DIM: columns, UNBIASED_LN: unbiased},
    )


def test_layer_norm_eps_inside_the_root(submission):
    """x = [1e-3, -1e-3]: variance 1e-6 is below eps = 1e-5, so eps decides the result."""
    x = torch.tensor([1e-3, -1e-3])
    assert_close(
        submission.layer_norm(x, torch.ones(2), torch.zeros(2), eps=1e-5),
        torch.tensor([0.301511, -0.301511]),
        misconceptions={
            EPS_OUTSIDE: torch.tensor([0.990099, -0.990099]),
            "eps ignored? It is added to the variance before the root": torch.tensor([1.0, -1.0]),
            UNBIASED_LN: torch.tensor([0.288675, -0.288675]),
        },
    )


def test_layer_norm_constant_row_gives_bias(submission):
    """A constant row has variance 0: its normalised values are 0 and the output is the bias, not NaN."""
    x = torch.tensor([[3.0, 3.0, 3.0, 3.0], [2.0, 4.0, 6.0, 8.0]])
    b = torch.tensor([0.5, -1.0, 0.0, 2.0])
    out = submission.layer_norm(x, ONES4, b)
    expect(
        isinstance(out, torch.Tensor) and not torch.isnan(out).any(),
        "the output has NaN values for a constant row",
        detail=f"got {out}",
        hint="a constant row has variance 0: add eps to the variance before the square root",
    )
    assert_close(
        out,
        torch.stack([b, torch.tensor([-1.341638, -0.447213, 0.447213, 1.341638]) + b]),
        misconceptions={
            UNBIASED_LN: torch.stack([b, torch.tensor([-1.161894, -0.387298, 0.387298, 1.161894]) + b])
        },
    )


def test_layer_norm_float16(submission):
    """A float16 input with float32 weight and bias returns float16 (computed in float32 inside)."""
    x = torch.tensor([2.0, 4.0, 6.0, 8.0], dtype=torch.float16)
    out = submission.layer_norm(x, ONES4, ZEROS4)
    expect(isinstance(out, torch.Tensor), "layer_norm must return a torch.Tensor")
    expect(
        out.dtype == torch.float16,
        f"the output has dtype {out.dtype}; expected torch.float16, the input's",
        hint="compute in float32 and cast the result back with .to(x.dtype) as the last step",
    )
    assert_close(
        out,
        torch.tensor([-1.341638, -0.447213, 0.447213, 1.341638], dtype=torch.float16),
        misconceptions={
            UNBIASED_LN: torch.tensor([-1.161894, -0.387298, 0.387298, 1.161894], dtype=torch.float16)
        },
    )


def bn_example():
    x = torch.tensor([[1.0, 10.0], [3.0, 10.0], [5.0, 20.0], [7.0, 20.0]])
    return x, torch.zeros(2), torch.ones(2), torch.ones(2), torch.zeros(2)


def test_batch_norm_training_worked_example(submission):
    """The lesson's (4, 2) batch in training: per-channel batch statistics, and the running update."""
    x, rm, rv, w, b = bn_example()
    got = submission.batch_norm(x, rm, rv, w, b, training=True)
    expect(
        isinstance(got, tuple | list) and len(got) == 3,
        "batch_norm must return a tuple (y, new_running_mean, new_running_var)",
    )
    y, new_mean, new_var = got
    assert_close(
        y,
        torch.tensor([[-1.341638, -1.0], [-0.447213, -1.0], [0.447213, 1.0], [1.341638, 1.0]]),
        what="y",
        misconceptions={
            BN_NORMALISED_UNBIASED: (
                torch.tensor(
                    [
                        [-1.161894, -0.866025],
                        [-0.387298, -0.866025],
                        [0.387298, 0.866025],
                        [1.161894, 0.866025],
                    ]
                )
            ),
            "normalised each row over its features? That is LayerNorm: BatchNorm averages each channel over "
            "the batch (dim 0)": torch.ones(4, 1) * torch.tensor([-1.0, 1.0]),
            RUNNING_IN_TRAINING: (x - rm) / (rv + 1e-5).sqrt(),
        },
    )
    assert_close(
        new_mean,
        torch.tensor([0.4, 1.5]),
        what="the new running_mean",
        misconceptions={
            MOMENTUM_SWAPPED: torch.tensor([3.6, 13.5]),
            "running statistics not updated? In training they move towards the batch's": rm,
        },
    )
    assert_close(
        new_var,
        torch.tensor([1.566667, 4.233333]),
        what="the new running_var",
        misconceptions={
            RUNNING_VAR_BIASED: torch.tensor([1.4, 3.4]),
            MOMENTUM_SWAPPED: torch.tensor([6.1, 30.1]),
            "running statistics not updated? In training they move towards the batch's": rv,
        },
    )


def test_batch_norm_eval_uses_running_statistics(submission):
    """training=False: x = [[2, 3]] normalised with running mean [0.4, 1.5] and variance [1.5667, 4.2333]."""
    rm, rv = torch.tensor([0.4, 1.5]), torch.tensor([1.566667, 4.233333])
    x = torch.tensor([[2.0, 3.0], [0.4, 1.5]])
    y, new_mean, new_var = submission.batch_norm(x, rm, rv, torch.ones(2), torch.zeros(2), training=False)
    assert_close(
        y,
        torch.tensor([[1.278293, 0.729037], [0.0, 0.0]]),
        what="y",
        misconceptions={EVAL_BATCH_STATS: (x - x.mean(0)) / (x.var(0, correction=0) + 1e-5).sqrt()},
    )
    assert_close(
        (new_mean, new_var),
        (rm, rv),
        what="the running statistics returned in eval mode",
        hint="with training=False the running statistics are returned as they were",
    )


def test_batch_norm_one_value_per_channel_raises(submission):
    """training=True with a single example of shape (1, C): BatchNorm raises ValueError, as PyTorch does."""
    x = torch.tensor([[1.0, 2.0, 3.0]])
    try:
        submission.batch_norm(x, torch.zeros(3), torch.ones(3), torch.ones(3), torch.zeros(3), training=True)
    except ValueError:
        return
    expect(
        False,
        "batch_norm(training=True) with one value per channel must raise ValueError",
        hint="with n = N * L = 1 the unbiased variance divides by n - 1 = 0: raise ValueError instead",
    )
