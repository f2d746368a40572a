"""Public tests: small cases you can check by hand.

Run them with `grader test rmsnorm norm.py`.
"""

import torch

from grader.testing import assert_close, expect


def test_worked_example(submission):
    """x = [1, 7]: mean(x^2) = 25, rms = 5, x / rms = [0.2, 1.4]; times g = [2, 0.5]: [0.4, 0.7]."""
    x = torch.tensor([1.0, 7.0])
    g = torch.tensor([2.0, 0.5])
    assert_close(
        submission.rms_norm(x, g),
        torch.tensor([0.4, 0.7]),
        misconceptions={
            "the gain was ignored: multiply x / rms by weight": torch.tensor([0.2, 1.4]),
            "the gain was added: multiply x / rms by weight, feature by feature": torch.tensor([2.2, 1.9]),
            "subtracted the mean? That is LayerNorm: RMSNorm only divides by the rms": torch.tensor(
                [-2.0, 0.5]
            ),
            "divided by the mean square instead of its square root?": torch.tensor([0.08, 0.14]),
            "divided by the root of the SUM of squares? Take the mean (divide by d)": torch.tensor(
                [2 / 50**0.5, 3.5 / 50**0.5]
            ),
        },
    )


def test_each_row_on_its_own(submission):
    """[[1, 7], [3, 4]]: each row is divided by its own rms (5 and sqrt(12.5)), not the batch's."""
    x = torch.tensor([[1.0, 7.0], [3.0, 4.0]])
    rms_all = (x.pow(2).mean() + 1e-6).sqrt()
    rms_cols = (x.pow(2).mean(dim=0, keepdim=True) + 1e-6).sqrt()
    assert_close(
        submission.rms_norm(x, torch.ones(2)),
        torch.tensor([[0.2, 1.4], [0.848528, 1.131371]]),
        misconceptions={
            "normalised over the whole tensor? Take the mean over the last dim only (dim=-1)": x / rms_all,
            "normalised over the first dim (the columns)? Take the mean over the last dim (dim=-1)": x
            / rms_cols,
            "forgot keepdim=True? The mean square of each row must broadcast along that row": x
            / (x.pow(2).mean(dim=-1) + 1e-6).sqrt(),
        },
    )


def test_eps_inside_the_root(submission):
    """x = [1e-4, -1e-4]: mean(x^2) = 1e-8 is below eps = 1e-6, so eps dominates the root."""
    x = torch.tensor([1e-4, -1e-4])
    assert_close(
        submission.rms_norm(x, torch.ones(2), eps=1e-6),
        torch.tensor([0.0995037, -0.0995037]),
        misconceptions={
            "eps added outside the square root? It goes inside: x / sqrt(mean(x^2) + eps)": torch.tensor(
                [0.990099, -0.990099]
            ),
            "eps ignored? The mean square gets eps added before the root": torch.tensor([1.0, -1.0]),
        },
    )


def test_zero_vector_gives_zeros(submission):
    """An all-zero vector comes out as zeros, not NaN: that is what eps is for."""
    out = submission.rms_norm(torch.zeros(2, 4), torch.ones(4))
    assert_close(
        out, torch.zeros(2, 4), hint="0 / sqrt(0) is NaN: add eps to the mean square before the root"
    )


def test_layer(submission):
    """RMSNorm(4): weight is a Parameter of four ones, eps is 1e-6, and forward keeps the shape."""
    layer = submission.RMSNorm(4)
    assert_close(layer.attr("weight"), torch.ones(4), what="RMSNorm(4).weight")
    expect(layer.attr("weight.requires_grad") is True, "RMSNorm(4).weight must be a trainable nn.Parameter")
    assert_close(layer.attr("eps"), 1e-6, what="RMSNorm(4).eps")
    x = torch.tensor([[[1.0, 1.0, 1.0, 1.0], [2.0, -2.0, 2.0, -2.0], [3.0, 0.0, 0.0, 0.0]]])  # (1, 3, 4)
    assert_close(
        layer(x),
        torch.tensor([[[1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 1.0, -1.0], [2.0, 0.0, 0.0, 0.0]]]),
        what="RMSNorm(4)(x) for x of shape (1, 3, 4)",
    )


def test_float16_in_float16_out(submission):
    """A float16 input with a float32 gain returns float16 (computed in float32 inside)."""
    x = torch.tensor([[1.0, 7.0]], dtype=torch.float16)
    out = submission.rms_norm(x, torch.ones(2))
    expect(isinstance(out, torch.Tensor), "rms_norm must return a torch.Tensor")
    expect(
        out.dtype == torch.float16,
        f"the output has dtype {out.dtype}; expected torch.float16, the input's",
        hint="cast the float32 result back with .to(x.dtype) after multiplying by the gain",
    )
    assert_close(out, torch.tensor([[0.2, 1.4]], dtype=torch.float16))
