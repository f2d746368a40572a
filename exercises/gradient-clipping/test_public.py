"""Public tests: the worked example of the lesson, which you can check by hand.

Run them with `grader test gradient-clipping gradient_clipping.py`.

Tensors normally cross to your code as copies, so the tests keep the parameters and their
gradients inside the process that runs your code (`kept_in_runner`), call `clip_grad_norm_` on
those very tensors, and read them back afterwards: that is how an in-place update is seen.
"""

import torch

from grader.testing import assert_close, expect, kept_in_runner

PER_TENSOR = "clipped each tensor by its own norm? Use one coefficient for all, from the global norm"
SUM_OF_NORMS = "added the norms of the tensors? The global norm is sqrt(sum of the squared norms)"
NO_CLAMP = "scaled small gradients up? Clamp the coefficient at 1.0: below max_norm nothing changes"
CLIPPED_NORM = "returned the norm after clipping? Return total_norm, the norm before clipping"
SQUARED = "returned the squared norm? Take the square root of the sum of squares"


def clip_in_runner(submission, grads, max_norm):
    """Parameters (zeros) with the given gradients (None: no .grad), kept in the runner; call
    clip_grad_norm_ on them there. Returns (the returned norm, each p.grad after the call, each
    original gradient tensor after the call, each parameter's value after the call)."""
    fn = submission.clip_grad_norm_
    params, kept_grads = [], []
    for grad in grads:
        shape, dtype = (grad.shape, grad.dtype) if grad is not None else ((2,), torch.float32)
        p = kept_in_runner(fn, torch.zeros(shape, dtype=dtype, requires_grad=True))
        g = None
        if grad is not None:
            g = kept_in_runner(fn, grad.clone())
            p.grad = g  # p.grad is that very tensor, in the runner
        params.append(p)
        kept_grads.append(g)
    norm = fn(params, max_norm)
    p_grads = [p.attr("grad") for p in params]
    originals = [None if g is None else g.read_back() for g in kept_grads]
    values = [p.read_back() for p in params]
    return norm, p_grads, originals, values


def example():
    return [torch.tensor([3.0, 4.0]), torch.tensor([12.0])]


def test_worked_example(submission):
    """g1 = [3, 4], g2 = [12], max_norm = 6.5: total norm 13, every gradient halved, 13 returned."""
    norm, grads, _, _ = clip_in_runner(submission, example(), 6.5)
    coef = 6.5 / (13.0 + 1e-6)
    assert_close(
        grads,
        [torch.tensor([3.0, 4.0]) * coef, torch.tensor([12.0]) * coef],
        what="the gradients after clip_grad_norm_(params, 6.5)",
        misconceptions={
            PER_TENSOR: [torch.tensor([3.0, 4.0]), torch.tensor([6.5])],
            SUM_OF_NORMS: [torch.tensor([3.0, 4.0]) * 6.5 / 17, torch.tensor([12.0]) * 6.5 / 17],
        },
    )
    assert_close(
        norm,
        torch.tensor(13.0),
        what="the returned norm",
        misconceptions={
            CLIPPED_NORM: torch.tensor(6.5),
            SUM_OF_NORMS: torch.tensor(17.0),
            SQUARED: torch.tensor(169.0),
        },
    )


def test_below_the_limit(submission):
    """max_norm = 20 is above the total norm 13: the gradients stay as they are, and 13 is returned."""
    norm, grads, _, _ = clip_in_runner(submission, example(), 20.0)
    assert_close(
        grads,
        example(),
        what="the gradients after clip_grad_norm_(params, 20.0)",
        misconceptions={NO_CLAMP: [g * 20.0 / 13.0 for g in example()]},
    )
    assert_close(
        norm,
        torch.tensor(13.0),
        what="the returned norm",
        misconceptions={SUM_OF_NORMS: torch.tensor(17.0), SQUARED: torch.tensor(169.0)},
    )


def test_parameter_without_grad(submission):
    """A parameter whose .grad is None is skipped: it adds nothing to the norm and stays None."""
    g1, g3 = example()
    norm, grads, _, _ = clip_in_runner(submission, [g1, None, g3], 6.5)
    expect(
        grads[1] is None,
        "the .grad of the parameter that had none is no longer None",
        detail=f"it is now {grads[1]!r}",
        hint="skip parameters whose .grad is None; leave it None",
    )
    coef = 6.5 / (13.0 + 1e-6)
    assert_close(
        [grads[0], grads[2]],
        [g1 * coef, g3 * coef],
        what="the first and third parameters' gradients after clipping",
        misconceptions={
            PER_TENSOR: [g1, torch.tensor([6.5])],
            SUM_OF_NORMS: [g1 * 6.5 / 17, g3 * 6.5 / 17],
        },
    )
    assert_close(
        norm,
        torch.tensor(13.0),
        what="the returned norm",
        misconceptions={CLIPPED_NORM: torch.tensor(6.5), SQUARED: torch.tensor(169.0)},
    )


def test_in_place(submission):
    """The tensor in p.grad is scaled in place (not replaced), and the parameters are left alone."""
    _, grads, originals, values = clip_in_runner(submission, example(), 6.5)
    expect(
        all(isinstance(g, torch.Tensor) for g in grads),
        "every parameter must still have its gradient in p.grad after the call",
    )
    assert_close(
        originals,
        grads,
        what="the gradient tensors that were in p.grad before the call, against p.grad after it",
        hint="scale each gradient in place (g.mul_(coef)); p.grad = p.grad * coef puts a new tensor "
        "there and leaves the original one as it was",
    )
    assert_close(
        values,
        [torch.zeros(2), torch.zeros(1)],
        what="the parameters' own values",
        hint="scale p.grad, never p itself",
    )
