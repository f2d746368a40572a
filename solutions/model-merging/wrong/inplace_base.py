# expect: failed
# why: starts from merged = dict(base) and adds the merged task vector with +=, which writes into the
#   base's own tensors: the result is right, but the caller's base model is changed
# caught-by: test_inputs_unchanged

import math
from collections.abc import Sequence

import torch

Tensor = torch.Tensor
StateDict = dict[str, Tensor]

DOT_THRESHOLD = 0.9995  # mergekit's: |cos theta| above this counts as (anti)parallel
EPS = 1e-8  # mergekit's: a vector whose norm is not above this is not normalised


def _check_compatible(base: StateDict, other: StateDict, name: str) -> None:
    """Raise ValueError unless `other` has exactly the keys of `base`, with the same shapes."""
    missing = sorted(set(base) - set(other))
    extra = sorted(set(other) - set(base))
    if missing or extra:
        raise ValueError(
            f"{name} does not have the keys of the first state dict: missing {missing}, extra {extra}"
        )
    for key, tensor in base.items():
        if tuple(other[key].shape) != tuple(tensor.shape):
            raise ValueError(
                f"{name}[{key!r}] has shape {tuple(other[key].shape)}, expected {tuple(tensor.shape)}"
            )


def _check_models(base: StateDict, finetuned: Sequence[StateDict]) -> None:
    if len(finetuned) == 0:
        raise ValueError("finetuned must hold at least one state dict")
    for i, model in enumerate(finetuned):
        _check_compatible(base, model, f"finetuned[{i}]")


def task_arithmetic(base: StateDict, finetuned: Sequence[StateDict], lam=1.0) -> StateDict:
    """base + sum_i lam_i * (finetuned_i - base), key by key, computed in float64."""
    _check_models(base, finetuned)
    if isinstance(lam, int | float):
        weights = [float(lam)] * len(finetuned)
    else:
        weights = [float(w) for w in lam]
        if len(weights) != len(finetuned):
            raise ValueError(f"lam has {len(weights)} weights for {len(finetuned)} fine-tuned models")
    merged = dict(base)  # the mistake: the same tensors as base
    for key, b in base.items():
        b64 = b.to(torch.float64)
        delta = torch.zeros_like(b64)
        for w, model in zip(weights, finetuned, strict=True):
            delta = delta + w * (model[key].to(torch.float64) - b64)
        merged[key] += delta.to(b.dtype)  # writes into base[key]
    return merged


def magnitude_prune(tau: Tensor, density: float) -> Tensor:
    """Keep the entries with |tau| >= the k-th largest |tau|, k = int(density * numel); zero the rest."""
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density must be in [0, 1], got {density}")
    k = int(density * tau.numel())
    if k == 0:
        return torch.zeros_like(tau)
    magnitude = tau.abs()
    threshold = magnitude.flatten().topk(k).values[-1]  # the k-th largest magnitude
    return torch.where(magnitude >= threshold, tau, torch.zeros_like(tau))  # ties at it are all kept


def ties_merge(
    base: StateDict, finetuned: Sequence[StateDict], density: float, lam: float = 1.0
) -> StateDict:
    """TIES: trim each task vector per tensor, elect the sign by total mass, disjoint mean, scale by lam."""
    _check_models(base, finetuned)
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density must be in [0, 1], got {density}")
    merged = dict(base)  # the mistake: the same tensors as base
    for key, b in base.items():
        b64 = b.to(torch.float64)
        # 1. trim: each task vector keeps its own top entries of this tensor
        taus = torch.stack([magnitude_prune(m[key].to(torch.float64) - b64, density) for m in finetuned])
        # 2. elect: the sign of the total mass; a total of exactly 0 elects +1
        elected = torch.where(taus.sum(dim=0) >= 0, 1.0, -1.0).to(torch.float64)
        # 3. disjoint mean: average only the entries whose sign is the elected one (zeros never are)
        agree = taus.sign() == elected
        total = torch.where(agree, taus, torch.zeros_like(taus)).sum(dim=0)
        count = agree.sum(dim=0).clamp(min=1)
        merged[key] += (lam * (total / count)).to(b.dtype)  # writes into base[key]
    return merged


def _slerp_tensor(a: Tensor, b: Tensor, t: float) -> Tensor:
    x, y = a.to(torch.float64).flatten(), b.to(torch.float64).flatten()
    nx, ny = float(torch.linalg.vector_norm(x)), float(torch.linalg.vector_norm(y))
    ux = x / nx if nx > EPS else x
    uy = y / ny if ny > EPS else y
    dot = float((ux * uy).sum())
    if abs(dot) > DOT_THRESHOLD:  # (anti)parallel: sin(theta) ~ 0, interpolate linearly
        out = (1.0 - t) * x + t * y
    else:
        theta = math.acos(dot)
        s = math.sin(theta)
        out = (math.sin((1.0 - t) * theta) / s) * x + (math.sin(t * theta) / s) * y  # the original vectors
    return out.reshape(a.shape).to(a.dtype)


def slerp(a: StateDict, b: StateDict, t: float) -> StateDict:
    """Spherical interpolation from a (t = 0) to b (t = 1), one flattened tensor at a time."""
    _check_compatible(a, b, "b")
    return {key: _slerp_tensor(a[key], b[key], float(t)) for key in a}
