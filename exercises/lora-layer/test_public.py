"""Public tests: the worked example of the README, and the layer's shape, start and freezing.

Run them with `grader test lora-layer lora.py`.
"""

import torch

from grader.testing import assert_close, expect

W = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
BIAS = torch.tensor([0.5, -0.5])
A = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
B = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
X = torch.tensor([1.0, 2.0, 3.0])


def linear(weight, bias=None):
    """An nn.Linear with the given weight (out, in) and bias."""
    layer = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def set_lora(layer, a, b):
    """Give the layer's lora_A and lora_B these values (strict=False: the base keeps its own)."""
    _, unexpected = layer.call("load_state_dict", {"lora_A": a, "lora_B": b}, strict=False)
    expect(not unexpected, f"the layer has no parameter(s) named {unexpected}: name them lora_A and lora_B")


def test_worked_example(submission):
    """The README's example: W x + b = [1.5, 1.5], (x A^T) B^T = [6, 2], scaling = 4 / 2 = 2."""
    layer = submission.LoRALinear(linear(W, BIAS), r=2, alpha=4)
    set_lora(layer, A, B)
    assert_close(
        layer(X),
        torch.tensor([13.5, 5.5]),
        what="LoRALinear(base, r=2, alpha=4)(x)",
        misconceptions={
            "scaled by alpha instead of alpha / r? scaling = 4 / 2 = 2": torch.tensor([25.5, 9.5]),
            "forgot the scaling? The branch is multiplied by alpha / r = 2": torch.tensor([7.5, 3.5]),
            "scaled by r / alpha instead of alpha / r?": torch.tensor([4.5, 2.5]),
            "the base output is missing: y = base(x) + the branch": torch.tensor([12.0, 4.0]),
            "the bias is missing: base(x) includes base.bias": torch.tensor([13.0, 6.0]),
        },
    )


def test_shapes_and_scaling(submission):
    """LoRALinear(nn.Linear(8, 4), r=2, alpha=4): A is (r, in) = (2, 8), B is (out, r) = (4, 2)."""
    layer = submission.LoRALinear(torch.nn.Linear(8, 4), r=2, alpha=4)
    assert_close(tuple(layer.attr("lora_A.shape")), (2, 8), what="lora_A.shape (r, in_features)")
    assert_close(tuple(layer.attr("lora_B.shape")), (4, 2), what="lora_B.shape (out_features, r)")
    assert_close(layer.attr("scaling"), 2.0, what="scaling (alpha / r)")


def test_starts_as_the_base_layer(submission):
    """B starts at zero, so a new layer computes exactly what the base layer computes."""
    base = torch.nn.Linear(8, 4)
    layer = submission.LoRALinear(base, r=2, alpha=4)
    assert_close(layer.attr("lora_B"), torch.zeros(4, 2), what="lora_B right after construction")
    x = torch.randn(3, 8)
    assert_close(layer(x), base(x).detach(), what="the output of a new layer (it must equal base(x))")


def test_base_is_frozen(submission):
    """Only lora_A and lora_B train: 2 * (8 + 4) = 24 numbers; the base's weight and bias are frozen."""
    layer = submission.LoRALinear(torch.nn.Linear(8, 4), r=2, alpha=4)
    expect(
        layer.attr("base.weight.requires_grad") is False, "base.weight must be frozen (requires_grad False)"
    )
    expect(
        layer.attr("base.bias.requires_grad") is False, "base.bias must be frozen too (requires_grad False)"
    )
    expect(layer.attr("lora_A.requires_grad") is True, "lora_A must be trainable (an nn.Parameter)")
    expect(layer.attr("lora_B.requires_grad") is True, "lora_B must be trainable (an nn.Parameter)")


def test_merge_worked_example(submission):
    """merge() turns W into W + 2 * B @ A = [[3, 2, 2], [0, 3, 0]]; the output stays [13.5, 5.5]."""
    layer = submission.LoRALinear(linear(W, BIAS), r=2, alpha=4)
    set_lora(layer, A, B)
    layer.merge()
    assert_close(
        layer.attr("base.weight"),
        torch.tensor([[3.0, 2.0, 2.0], [0.0, 3.0, 0.0]]),
        what="base.weight after merge()",
    )
    assert_close(
        layer(X),
        torch.tensor([13.5, 5.5]),
        what="the output after merge()",
        misconceptions={
            "the branch is added again after merging: once merged, forward is base(x) alone": torch.tensor(
                [25.5, 9.5]
            )
        },
    )
