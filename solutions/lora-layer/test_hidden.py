"""Hidden tests for lora-layer: initialisation, freezing, the forward and its gradients through
the runner, dropout on the branch only, merge and unmerge, and the cost of a forward and backward
pass (no (out, in) delta-W)."""

import copy
import math

import numpy as np
import pytest
import torch

from grader.testing import Call, assert_close, call_unchanged, expect, shrink

SCALED_BY_ALPHA = "scaled by alpha instead of alpha / r?"
NO_SCALING = "forgot the scaling? The branch is multiplied by alpha / r"
FROZEN_HINT = "freeze the base layer: base.weight.requires_grad_(False), and the same for base.bias"


def randn(rng, *shape, scale=1.0):
    return torch.from_numpy(rng.standard_normal(shape, dtype=np.float32) * np.float32(scale))


def make_linear(rng, n_in, n_out, bias=True):
    """An nn.Linear with a pretrained-looking random weight (and bias)."""
    layer = torch.nn.Linear(n_in, n_out, bias=bias)
    with torch.no_grad():
        layer.weight.copy_(randn(rng, n_out, n_in, scale=1 / math.sqrt(n_in)))
        if bias:
            layer.bias.copy_(randn(rng, n_out, scale=0.1))
    return layer


SHAPES = {"lora_A": "(r, in_features)", "lora_B": "(out_features, r)"}


def require(layer, name, shape):
    """Read the shape of the layer's parameter `name`, failing with a clear message."""
    try:
        found = tuple(layer.attr(f"{name}.shape"))
    except AttributeError:
        pytest.fail(
            f"could not read {name}.shape: {name} must be an nn.Parameter of the layer, named {name} "
            "(the tests read lora_A, lora_B, base and scaling)"
        )
    expect(
        found == tuple(shape),
        f"{name} does not have the shape {SHAPES[name]}",
        detail=f"{name} has shape {found}; expected {tuple(shape)}",
        hint="lora_A is (r, in_features) and lora_B is (out_features, r)",
    )


def set_lora(layer, a, b):
    """Load lora_A and lora_B into a remote layer (the base keeps its own weights)."""
    require(layer, "lora_A", a.shape)
    require(layer, "lora_B", b.shape)
    _, unexpected = layer.call("load_state_dict", {"lora_A": a, "lora_B": b}, strict=False)
    expect(not unexpected, "lora_A and lora_B must be parameters of the layer itself (nn.Parameter)")


def oracle(reference, base, r, alpha, a, b, dropout=0.0):
    """The reference layer in float64, around a float64 copy of `base`, with A and B."""
    ref = reference.LoRALinear(copy.deepcopy(base).double(), r=r, alpha=alpha, dropout=dropout)
    ref.load_state_dict({"lora_A": a.double(), "lora_B": b.double()}, strict=False)
    return ref


def pair(submission, reference, base, r, alpha, a, b, dropout=0.0):
    """The submission's layer around `base` with A and B, and the float64 oracle of it."""
    layer = submission.LoRALinear(base, r=r, alpha=alpha, dropout=dropout)
    set_lora(layer, a, b)
    return layer, oracle(reference, base, r, alpha, a, b, dropout)


def exact(ref, x):
    """The oracle's output for the float32 input x, rounded once to float32."""
    with torch.no_grad():
        return ref(x.double()).float()


# Every value of a forward and backward pass (outputs, gradients) is compared with the float64
# oracle rounded to float32 (and, in the efficiency checks, with the reference's own float32
# result) with float32's default rtol, and an atol of float32's default relative to the largest
# entry: an entry is a sum of terms as large as that, and a different (correct) order of the sum
# moves it by their rounding, however close to zero it ends. Float32 code, the reference included,
# is measured within 1e-6 x that scale on these tests, so this keeps a 10x margin.
RTOL, ATOL = 1.3e-6, 1e-5


def close(got, want, what, *, hint="", misconceptions=None):
    """assert_close with the pass tolerance above; `want` is None for a frozen parameter."""
    if want is None or not isinstance(want, torch.Tensor):
        assert_close(got, want, what=what, hint=hint)
        return
    scale = float(want.abs().max()) if want.numel() else 1.0
    assert_close(
        got, want, what=what, rtol=RTOL, atol=ATOL * max(scale, 1.0), hint=hint, misconceptions=misconceptions
    )


def check_backward(layer, ref, x, g, *, hint="", misconceptions=None):
    """Backward through the submission's layer with upstream gradient g, against the oracle: the
    output, the gradient of x, and the gradient of every parameter (None for the frozen base)."""
    found = layer.backward(x.detach().requires_grad_(), grad_output=g)
    x64 = x.detach().double().requires_grad_()
    y = ref(x64)
    y.backward(g.double())
    close(found.output, y.detach().float(), "the output", hint=hint, misconceptions=misconceptions)
    expect(len(found.inputs) == 1, "x got no gradient", hint="compute the output from x with torch ops")
    close(found.inputs[0], x64.grad.float(), "the gradient of x", hint=hint)
    for name, param in ref.named_parameters():
        want = None if param.grad is None else param.grad.float()
        close(found.params.get(name), want, f"the gradient of parameter {name}", hint=hint)


def branch(x, base, a, b, scaling):
    """The forward with a given scaling, for the likely mistakes."""
    with torch.no_grad():
        return base(x) + (x @ a.T @ b.T) * scaling


def forward_mistakes(x, base, a, b, r, alpha):
    return {
        SCALED_BY_ALPHA: branch(x, base, a, b, alpha),
        NO_SCALING: branch(x, base, a, b, 1.0),
        "scaled by r / alpha instead of alpha / r?": branch(x, base, a, b, r / alpha),
        "the LoRA branch is missing? y = base(x) + scaling * x A^T B^T": branch(x, base, a, b, 0.0),
        "the base output is missing? y = base(x) + the branch": branch(x, base, a, b, alpha / r)
        - base(x).detach(),
    }


# ---------------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    "n_in, n_out, r, alpha",
    [
        pytest.param(16, 8, 4, 8, id="16-to-8-r4"),
        pytest.param(5, 12, 1, 1, id="5-to-12-r1"),
        pytest.param(64, 64, 16, 8, id="64-to-64-r16-alpha-below-r"),
    ],
)
def test_shapes_and_scaling_for_several_sizes(submission, n_in, n_out, r, alpha):
    """lora_A is (r, in), lora_B is (out, r), scaling is alpha / r."""
    layer = submission.LoRALinear(torch.nn.Linear(n_in, n_out), r=r, alpha=alpha)
    require(layer, "lora_A", (r, n_in))
    require(layer, "lora_B", (n_out, r))
    scaling = layer.attr("scaling")
    expect(
        isinstance(scaling, int | float) and math.isclose(scaling, alpha / r, rel_tol=1e-6),
        "scaling is not alpha / r",
        hint="scaling = alpha / r, a number (not alpha, not r / alpha)",
    )


def test_initialisation(submission, rng):
    """B is zero; A is uniform in [-1/sqrt(in), 1/sqrt(in)] (kaiming_uniform_ with a=sqrt(5))."""
    n_in, n_out, r = 1024, 32, 64
    layer = submission.LoRALinear(torch.nn.Linear(n_in, n_out), r=r, alpha=16)
    b = layer.attr("lora_B")
    expect(
        isinstance(b, torch.Tensor) and bool((b == 0).all()),
        "lora_B must start at exactly zero",
        hint="with B = 0 the update B @ A is zero, so the wrapped layer starts out as the pretrained one",
    )
    a = layer.attr("lora_A")
    bound = 1 / math.sqrt(n_in)
    expect(
        isinstance(a, torch.Tensor) and bool((a != 0).any()),
        "lora_A must start random, not zero",
        hint="with A = 0 and B = 0 both gradients are zero and nothing ever trains",
    )
    expect(
        bool((a.abs() <= bound * (1 + 1e-6)).all()),
        "lora_A has values outside [-1/sqrt(in_features), 1/sqrt(in_features)]",
        hint="initialise A as nn.Linear initialises its weight: nn.init.kaiming_uniform_(A, a=math.sqrt(5))",
    )
    std = float(a.float().std())
    expect(
        abs(std - bound / math.sqrt(3)) < 0.1 * bound / math.sqrt(3),
        "lora_A's spread is not that of a uniform distribution over [-1/sqrt(in), 1/sqrt(in)]",
        hint="nn.init.kaiming_uniform_(A, a=math.sqrt(5)) on the (r, in_features) tensor",
    )


def test_parameters_follow_the_base_dtype(submission):
    """A float64 base layer gives float64 lora_A and lora_B."""
    layer = submission.LoRALinear(torch.nn.Linear(6, 4).double(), r=2, alpha=2)
    for name in ("lora_A", "lora_B"):
        expect(
            layer.attr(f"{name}.dtype") == torch.float64,
            f"{name} of a float64 base layer is not float64",
            hint="create A and B with dtype=base.weight.dtype, device=base.weight.device",
        )


@pytest.mark.hint("check r first thing in __init__: if r <= 0, raise ValueError(...)")
@pytest.mark.parametrize("r", [pytest.param(0, id="r=0"), pytest.param(-2, id="r=-2")])
def test_rank_must_be_positive(submission, r):
    """A rank r <= 0 raises ValueError."""
    try:
        submission.LoRALinear(torch.nn.Linear(4, 4), r=r, alpha=1)
    except ValueError:
        return
    pytest.fail(f"LoRALinear(..., r={r}) returned normally; it must raise ValueError")


# ---------------------------------------------------------------------------- freezing


@pytest.mark.parametrize("bias", [pytest.param(True, id="with-bias"), pytest.param(False, id="without-bias")])
def test_base_frozen(submission, bias):
    """base.weight and base.bias do not train; lora_A and lora_B do."""
    layer = submission.LoRALinear(torch.nn.Linear(12, 6, bias=bias), r=3, alpha=6)
    expect(layer.attr("base.weight.requires_grad") is False, "base.weight is trainable", hint=FROZEN_HINT)
    if bias:
        expect(layer.attr("base.bias.requires_grad") is False, "base.bias is trainable", hint=FROZEN_HINT)
    else:
        expect(layer.attr("base.bias") is None, "base.bias must stay None for a layer built with bias=False")
    for name in ("lora_A", "lora_B"):
        expect(layer.attr(f"{name}.requires_grad") is True, f"{name} is not trainable (requires_grad False)")


@pytest.mark.parametrize(
    "n_in, n_out, r, bias",
    [
        pytest.param(12, 6, 3, True, id="12-to-6-r3"),
        pytest.param(7, 20, 5, False, id="7-to-20-r5-no-bias"),
    ],
)
def test_trainable_parameter_count(submission, n_in, n_out, r, bias):
    """The trainable parameters are exactly r * (in + out) numbers: lora_A and lora_B."""
    layer = submission.LoRALinear(torch.nn.Linear(n_in, n_out, bias=bias), r=r, alpha=2 * r)
    trainable = {}
    for name, param in layer.call("named_parameters"):
        if layer.attr(f"{name}.requires_grad"):
            trainable[name] = param.numel()
    expect(
        sorted(trainable) == ["lora_A", "lora_B"],
        "the trainable parameters are not exactly lora_A and lora_B",
        detail=f"the trainable parameters are {sorted(trainable)}",
        hint=FROZEN_HINT,
    )
    total = sum(trainable.values())
    expect(
        total == r * (n_in + n_out),
        "the number of trainable numbers is not r * (in_features + out_features)",
        detail=f"{total} trainable numbers; expected {r * (n_in + n_out)}",
    )


# ---------------------------------------------------------------------------- forward


def test_new_layer_equals_base_for_any_leading_dims(submission, rng):
    """A new layer (B = 0) returns exactly base(x), for any leading dims."""
    base = make_linear(rng, 32, 24)
    layer = submission.LoRALinear(base, r=4, alpha=8)
    for shape in [(32,), (5, 32), (2, 3, 32)]:
        x = randn(rng, *shape)
        assert_close(
            layer(x),
            base(x).detach(),
            what=f"the output of a new layer for x of shape {shape}",
            hint="B must start at zero so that the update B @ A is zero; the base output is base(x)",
        )


@pytest.mark.parametrize(
    "lead",
    [
        pytest.param((), id="one-vector"),
        pytest.param(("n",), id="tokens"),
        pytest.param(("b", "n"), id="batch"),
    ],
)
def test_forward_trained(submission, reference, seed, lead):
    """With trained A and B, the output matches the reference, for random sizes and leading dims."""

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        n_in, n_out, r = sizes["in"], sizes["out"], sizes["r"]
        alpha = 2.0 * r + 1.0
        base = make_linear(rng, n_in, n_out)
        a, b = randn(rng, r, n_in, scale=0.3), randn(rng, n_out, r, scale=0.3)
        layer, ref = pair(submission, reference, base, r, alpha, a, b)
        x = randn(rng, *[sizes[d] for d in lead], n_in)
        close(layer(x), exact(ref, x), "the output", misconceptions=forward_mistakes(x, base, a, b, r, alpha))

    sizes = {"in": 24, "out": 16, "r": 4, "b": 2, "n": 5}
    used = {k: v for k, v in sizes.items() if k in ("in", "out", "r", *lead)}
    shrink(check, used, seed=seed, minimum={k: 2 if k == "r" else 1 for k in used})


# ---------------------------------------------------------------------------- gradients


def test_gradients(submission, reference, rng):
    """Backward with trained A and B: the gradients of x, lora_A and lora_B; none for the base."""
    base = make_linear(rng, 20, 12)
    a, b = randn(rng, 4, 20, scale=0.3), randn(rng, 12, 4, scale=0.3)
    layer, ref = pair(submission, reference, base, 4, 6.0, a, b)
    x = randn(rng, 3, 5, 20)
    g = randn(rng, 3, 5, 12)
    check_backward(
        layer,
        ref,
        x,
        g,
        hint="the base's weight and bias get no gradient (they are frozen); lora_A, lora_B and x do",
        misconceptions=forward_mistakes(x, base, a, b, 4, 6.0),
    )


def test_gradient_of_b_at_the_start(submission, reference, rng):
    """On a new layer (B = 0), B already gets a gradient: scaling * grad_y^T (x A^T)."""
    base = make_linear(rng, 16, 10)
    layer = submission.LoRALinear(base, r=4, alpha=8)
    require(layer, "lora_A", (4, 16))
    a = layer.attr("lora_A")  # the submission's own random A
    ref = oracle(reference, base, 4, 8, a, torch.zeros(10, 4))
    x = randn(rng, 6, 16)
    g = randn(rng, 6, 10)
    found = layer.backward(x, grad_output=g)
    ref(x.double()).backward(g.double())
    want = ref.lora_B.grad.float()
    grad_b = found.params.get("lora_B")
    expect(
        isinstance(grad_b, torch.Tensor),
        "lora_B got no gradient from a backward pass through a new layer",
        hint="B must be an nn.Parameter used in the forward: at B = 0 its gradient is scaling * g^T (x A^T)",
    )
    expect(
        bool((grad_b != 0).any()),
        "lora_B's gradient is zero on a new layer: it would never start to train",
        hint="A must start random (kaiming_uniform_) and B at zero, not the other way round: "
        "B's gradient is proportional to A",
    )
    close(
        found.params["lora_B"],
        want,
        "the gradient of lora_B on a new layer",
        misconceptions={SCALED_BY_ALPHA: want * 4, NO_SCALING: want / 2},
    )


def test_forward_leaves_x_unchanged(submission, rng):
    """forward(x) in training mode with dropout leaves the caller's x as it was."""
    base = make_linear(rng, 24, 16)
    layer = submission.LoRALinear(base, r=4, alpha=8, dropout=0.5)
    set_lora(layer, randn(rng, 4, 24, scale=0.3), randn(rng, 16, 4, scale=0.3))
    layer.call("train", True)
    call_unchanged(
        layer,
        randn(rng, 10, 24),
        names=("x",),
        what="forward",
        hint="dropout must not write into x: nn.Dropout(p) (not inplace=True), or F.dropout(x, p, "
        "training=self.training) without inplace; the caller still needs its x",
    )


# ---------------------------------------------------------------------------- dropout


def dropout_setup(rng, n=64, rows=32):
    """base = identity, A = identity, B = 2 * identity, scaling = 1: y = x + 2 * dropout(x)."""
    base = torch.nn.Linear(n, n)
    with torch.no_grad():
        base.weight.copy_(torch.eye(n))
        base.bias.zero_()
    signs = torch.from_numpy(rng.choice(np.float32([-1.0, 1.0]), size=(rows, n)))
    x = signs * torch.from_numpy(rng.uniform(1.0, 2.0, size=(rows, n)).astype(np.float32))
    return base, torch.eye(n), 2 * torch.eye(n), x


def test_dropout_on_the_branch_only(submission, rng):
    """Training mode, dropout=0.5: each feature of the branch is dropped or doubled; the base path never."""
    base, a, b, x = dropout_setup(rng)
    layer = submission.LoRALinear(base, r=64, alpha=64, dropout=0.5)
    set_lora(layer, a, b)
    layer.call("train", True)
    ratio = layer(x) / x  # 1 where the branch was dropped, 1 + 2 * 2 = 5 where it was kept (and doubled)
    kept, dropped = (ratio - 5).abs() < 1e-4, (ratio - 1).abs() < 1e-4
    if not bool((kept | dropped).all()):
        near = {v: bool(((ratio - v).abs() < 1e-4).all()) for v in (3,)}
        only = lambda *values: bool(  # noqa: E731 - every ratio is one of `values`
            torch.stack([(ratio - v).abs() < 1e-4 for v in values]).any(0).all()
        )
        if near[3]:
            hint = "no dropout at all in training mode? Apply nn.Dropout(p) to the LoRA branch's input"
        elif only(0, 6):
            hint = (
                "the dropped-out x went through the base layer too? Only the LoRA branch's input is dropped"
            )
        elif only(2, 4):
            hint = "the base output was dropped out? Only the LoRA branch's input is dropped out"
        elif only(1, 3):
            hint = "kept features must be scaled by 1 / (1 - p): use nn.Dropout or F.dropout"
        else:
            hint = "y = base(x) + scaling * dropout(x) @ A^T @ B^T, with dropout on the LoRA branch only"
        expect(
            False,
            "with dropout=0.5 in training mode, the output is not base(x) plus a dropped-out LoRA branch",
            hint=hint,
        )
    share = float(dropped.float().mean())
    expect(
        0.4 < share < 0.6,
        "with dropout=0.5, the share of the branch's features dropped is not near one half",
        detail=f"{share:.0%} of the branch's features were dropped",
        hint="pass the dropout probability given to __init__ to nn.Dropout",
    )


def test_no_dropout_in_eval_mode(submission, reference, rng):
    """In eval mode, dropout does nothing: the output is the deterministic one."""
    base = make_linear(rng, 24, 16)
    a, b = randn(rng, 4, 24, scale=0.3), randn(rng, 16, 4, scale=0.3)
    layer, ref = pair(submission, reference, base, 4, 8.0, a, b, dropout=0.5)
    layer.call("eval")
    ref.eval()
    x = randn(rng, 10, 24)
    close(
        layer(x),
        exact(ref, x),
        "the output in eval mode with dropout=0.5",
        hint="use nn.Dropout (or F.dropout with training=self.training): in eval mode it does nothing",
        misconceptions=forward_mistakes(x, base, a, b, 4, 8.0),
    )


# ---------------------------------------------------------------------------- merge


def merged_pair(submission, reference, rng, n_in=24, n_out=16, r=4, alpha=8.0):
    base = make_linear(rng, n_in, n_out)
    a, b = randn(rng, r, n_in, scale=0.3), randn(rng, n_out, r, scale=0.3)
    layer, ref = pair(submission, reference, base, r, alpha, a, b)
    return layer, ref, base, a, b, alpha / r


def merge_call(layer, method):
    """Call merge() or unmerge() and return the warnings it emitted. A layer without the method is
    named by the harness ("your code has no `merge`"); an AttributeError raised inside the method
    is the submission's own, reported as such (not as a missing method)."""
    _, caught = layer.call_with_warnings(method)
    return caught


def merged_weight(base, a, b, scaling):
    """base.weight + scaling * B @ A, computed in float64 and rounded once to float32."""
    return (base.weight.detach().double() + scaling * b.double() @ a.double()).float()


def test_merge(submission, reference, rng):
    """merge() adds scaling * B @ A into base.weight, warns nothing, and the output is unchanged."""
    layer, ref, base, a, b, scaling = merged_pair(submission, reference, rng)
    x = randn(rng, 7, 24)
    before = exact(ref, x)
    caught = merge_call(layer, "merge")
    expect(not caught, "merge() on an unmerged layer emitted a warning", hint="warn only on a repeated call")
    assert_close(
        layer.attr("base.weight"),
        merged_weight(base, a, b, scaling),
        what="base.weight after merge()",
        misconceptions={
            SCALED_BY_ALPHA: base.weight.detach() + 8.0 * b @ a,
            NO_SCALING: base.weight.detach() + b @ a,
            "merge() left base.weight unchanged? Add scaling * B @ A into it, in place": base.weight.detach(),
        },
    )
    assert_close(
        layer(x),
        before,
        rtol=1e-5,
        atol=1e-5,
        what="the output after merge()",
        misconceptions={
            "the branch is still added after merging? Once merged, forward is base(x) alone": before
            + scaling * (x @ a.T @ b.T)
        },
    )


def test_merge_twice(submission, reference, rng):
    """A second merge() warns and changes nothing: the update is not added twice."""
    layer, ref, base, a, b, scaling = merged_pair(submission, reference, rng)
    merge_call(layer, "merge")
    once = layer.attr("base.weight")
    caught = merge_call(layer, "merge")
    assert_close(
        layer.attr("base.weight"),
        once,
        what="base.weight after a second merge()",
        misconceptions={
            "merge() is not idempotent: merging twice added the update twice": once + scaling * b @ a,
        },
        hint="keep a flag (self.merged) and do nothing when it is already set",
    )
    expect(caught, "a second merge() emitted no warning", hint="warnings.warn(...) when already merged")
    x = randn(rng, 4, 24)
    expected = exact(ref, x)
    assert_close(
        layer(x),
        expected,
        rtol=1e-5,
        atol=1e-5,
        what="the output after merging twice",
        misconceptions={
            "the branch is still added after merging? Once merged, forward is base(x) alone": expected
            + scaling * (x @ a.T @ b.T),
            **forward_mistakes(x, base, a, b, 4, 8.0),
        },
    )


def test_unmerge(submission, reference, rng):
    """unmerge() restores base.weight and the output; a second unmerge() warns and changes nothing."""
    layer, ref, base, a, b, scaling = merged_pair(submission, reference, rng)
    x = randn(rng, 5, 24)
    original = base.weight.detach().clone()
    merge_call(layer, "merge")
    caught = merge_call(layer, "unmerge")
    expect(not caught, "unmerge() on a merged layer emitted a warning", hint="warn only on a repeated call")
    assert_close(
        layer.attr("base.weight"),
        original,
        rtol=1e-5,
        atol=1e-6,
        what="base.weight after merge() then unmerge()",
        misconceptions={"unmerge() did nothing? Subtract scaling * B @ A again": original + scaling * b @ a},
    )
    assert_close(
        layer(x),
        exact(ref, x),
        rtol=1e-5,
        atol=1e-5,
        what="the output after merge() then unmerge()",
        misconceptions=forward_mistakes(x, base, a, b, 4, 8.0),
    )
    caught = merge_call(layer, "unmerge")
    assert_close(
        layer.attr("base.weight"),
        original,
        rtol=1e-5,
        atol=1e-6,
        what="base.weight after a second unmerge()",
        misconceptions={
            "unmerge() is not idempotent: unmerging twice subtracted the update twice": original
            - scaling * b @ a
        },
    )
    expect(caught, "a second unmerge() emitted no warning", hint="warnings.warn(...) when not merged")


def test_unmerge_before_merge(submission, rng):
    """unmerge() on a layer never merged warns and changes nothing."""
    base = make_linear(rng, 10, 6)
    layer = submission.LoRALinear(base, r=2, alpha=4)
    set_lora(layer, randn(rng, 2, 10), randn(rng, 6, 2))
    caught = merge_call(layer, "unmerge")
    assert_close(
        layer.attr("base.weight"),
        base.weight.detach(),
        what="base.weight after unmerge() on a layer never merged",
        hint="unmerge() does nothing unless the layer is merged",
    )
    expect(
        caught,
        "unmerge() on a layer never merged emitted no warning",
        hint="warnings.warn(...) when not merged",
    )


def test_train_again_after_unmerge(submission, reference, rng):
    """After merge() and unmerge(), the layer trains as before: gradients reach A and B again."""
    layer, ref, base, a, b, scaling = merged_pair(submission, reference, rng)
    merge_call(layer, "merge")
    merge_call(layer, "unmerge")
    x = randn(rng, 6, 24)
    g = randn(rng, 6, 16)
    check_backward(
        layer,
        ref,
        x,
        g,
        hint="once unmerged, forward adds the branch again and the layer trains as before: gradients for "
        "x, lora_A, lora_B, none for the base",
        misconceptions=forward_mistakes(x, base, a, b, 4, 8.0),
    )


# ---------------------------------------------------------------------------- efficiency


PASS_NAMES = ("the output", "the gradient of x", "the gradient of lora_A", "the gradient of lora_B")


def test_lora_forward_backward_kept(submission, reference, rng):
    """The given lora_forward_backward is still there and runs one forward and backward pass."""
    base = make_linear(rng, 20, 12)
    a, b = randn(rng, 4, 20, scale=0.3), randn(rng, 12, 4, scale=0.3)
    x, g = randn(rng, 3, 20), randn(rng, 3, 12)
    helper = submission.lora_forward_backward  # looked up here: a missing helper is named as such
    found = helper(base, a, b, 6.0, x, g)
    expected = reference.lora_forward_backward(
        copy.deepcopy(base).double(), a.double(), b.double(), 6.0, x.double(), g.double()
    )
    hint = "keep lora_forward_backward as given at the end of the skeleton: the efficiency checks call it"
    expect(
        isinstance(found, tuple | list) and len(found) == 4,
        "lora_forward_backward did not return (output, x.grad, A.grad, B.grad)",
        hint=hint,
    )
    for name, got, want in zip(PASS_NAMES, found, expected, strict=True):
        close(got, want.float(), f"{name} from lora_forward_backward", hint=hint)


# One forward and backward pass through a 1024 x 1024 layer, r = 8, 4 tokens. Measured: the
# reference's largest tensor is an (8, 1024) gradient (32 KiB) and it computes ~17 MFLOP (the two
# base matmuls dominate); building B @ A in the forward allocates a (1024, 1024) tensor (4 MiB,
# 128x) and computes ~75-90 MFLOP (4.4-5.4x: B @ A, its backward, and the (out, in) gradient).
N_IN = N_OUT = 1024
RANK = 8


def pass_call(rng):
    base = make_linear(rng, N_IN, N_OUT)
    a = randn(rng, RANK, N_IN, scale=1 / math.sqrt(N_IN))
    b = randn(rng, N_OUT, RANK, scale=0.1)
    x = randn(rng, 2, 2, N_IN)
    g = randn(rng, 2, 2, N_OUT)
    return Call("lora_forward_backward", base, a, b, 16.0, x, g)


def check_pass(actual, expected):
    """The output and the gradients of x, A and B, with the correctness tests' tolerance (`close`),
    so that a correct pass that is merely wasteful is reported as such, never as wrong."""
    expect(
        isinstance(actual, tuple | list) and len(actual) == 4,
        "lora_forward_backward did not return (output, x.grad, A.grad, B.grad)",
        hint="keep lora_forward_backward as given at the end of the skeleton",
    )
    for name, got, want in zip(PASS_NAMES, actual, expected, strict=True):
        close(got, want, f"{name} of the measured pass")


@pytest.mark.performance
def test_no_delta_w_tensor(perf):
    """The largest tensor of a forward and backward pass, against the reference's."""
    perf.measure(
        "delta_w_memory",
        pass_call,
        check=check_pass,
        hint="a tensor as large as the base weight was created: B @ A built in the forward (go through "
        "the rank-r bottleneck: (x @ A^T) @ B^T), or a copy of the base layer (keep the given one)",
    )


@pytest.mark.performance
def test_no_delta_w_flops(perf):
    """The FLOPs of a forward and backward pass, against the reference's."""
    perf.measure(
        "delta_w_flops",
        pass_call,
        check=check_pass,
        hint="B @ A costs 2 * out * r * in FLOPs, and its backward more: compute (x @ A^T) @ B^T instead",
    )
