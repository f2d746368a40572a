"""Gradient checks through the runner: backward in the sandbox with a given upstream gradient,
compared with autograd on the trusted side."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from grader.testing.asserts import assert_close


def local_gradients(
    fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any], grad_output: Any
) -> tuple[Any, list[Any], dict[str, Any]]:
    """Output, input gradients (tensor arguments that require grad, in order) and parameter
    gradients (when `fn` is a torch module or one of its methods), computed locally."""
    import torch

    copies = [_leaf(a, torch) for a in args]
    kw = {k: _leaf(v, torch) for k, v in kwargs.items()}
    out = fn(*copies, **kw)
    outputs = list(out) if isinstance(out, tuple | list) else [out]
    grads = list(grad_output) if isinstance(grad_output, tuple | list) else [grad_output]
    pairs = [
        (o, g)
        for o, g in zip(outputs, grads, strict=False)
        if isinstance(o, torch.Tensor) and o.requires_grad
    ]
    torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
    leaves = [a for a in [*copies, *kw.values()] if isinstance(a, torch.Tensor) and a.requires_grad]
    owner = getattr(fn, "__self__", fn)
    params = {n: p.grad for n, p in owner.named_parameters()} if isinstance(owner, torch.nn.Module) else {}
    detached = [o.detach() if isinstance(o, torch.Tensor) else o for o in outputs]
    result = type(out)(detached) if isinstance(out, tuple | list) else detached[0]  # a tuple stays a tuple
    return result, [a.grad for a in leaves], params


def assert_gradients_close(
    remote: Any,
    local: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None = None,
    *,
    grad_output: Any = None,
    rtol: float | None = None,
    atol: float | None = None,
    names: Sequence[str] = (),
    hint: str = "",
) -> None:
    """Backpropagate `grad_output` through the submission's `remote` (a function or a remote
    object) and through `local`, and compare outputs, input gradients and parameter gradients.

    Tensor arguments that should receive a gradient must have `requires_grad=True`; `names`
    labels them in messages (e.g. ("q", "k", "v"))."""
    kwargs = dict(kwargs or {})
    found = remote.backward(*args, grad_output=grad_output, **kwargs)
    out, inputs, params = local_gradients(local, args, kwargs, grad_output)
    assert_close(found.output, out, what="the output", rtol=rtol, atol=atol, hint=hint)
    labels = list(names) + [f"input {i}" for i in range(len(names), len(inputs))]
    assert_close(len(found.inputs), len(inputs), what="the number of input gradients")
    for label, got, want in zip(labels, found.inputs, inputs, strict=False):
        assert_close(got, want, what=f"the gradient of {label}", rtol=rtol, atol=atol, hint=hint)
    for name, want in params.items():
        assert_close(
            found.params.get(name),
            want,
            what=f"the gradient of parameter {name}",
            rtol=rtol,
            atol=atol,
            hint=hint,
        )


def _leaf(value: Any, torch: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone().requires_grad_(value.requires_grad)
    return value
