"""Causality: perturb every input after position t; no output at or before t may change.

Positions are absolute, so inputs of different lengths line up: with bottom-right alignment, a
query tensor of n_q positions over n_k keys starts at position n_k - n_q (`Seq(q, start=...)`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from grader.testing.asserts import GradingFailure
from grader.testing.compare import compare


@dataclass(frozen=True)
class Seq:
    """A tensor argument with a sequence dimension: `dim`, whose index 0 is position `start`."""

    tensor: Any
    dim: int = -2
    start: int = 0

    def positions(self) -> range:
        return range(self.start, self.start + self.tensor.shape[self.dim])


def assert_causal(
    fn: Callable[..., Any],
    args: Sequence[Any],
    *,
    rng: np.random.Generator,
    out_dim: int = -2,
    out_start: int = 0,
    cuts: Sequence[int] | None = None,
    kwargs: dict[str, Any] | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-6,
    what: str = "the output",
    hint: str = "",
) -> None:
    """Check that `fn(*args)` at position p depends on no input after p.

    `args` may mix `Seq` arguments (perturbed after each cut) with any other values (passed as
    they are). `cuts` are the positions to test (by default a few spread over the output)."""
    import torch

    kwargs = kwargs or {}
    plain = [a.tensor if isinstance(a, Seq) else a for a in args]
    base = fn(*plain, **kwargs)
    out_len = base.shape[out_dim]
    last = out_start + out_len - 1
    if cuts is None:
        cuts = sorted({out_start, out_start + out_len // 3, out_start + out_len // 2, last - 1} - {last})
    for cut in cuts:
        changed = [_perturb(a, cut, rng, torch) if isinstance(a, Seq) else a for a in args]
        out = fn(*changed, **kwargs)
        keep = cut - out_start + 1  # output positions out_start .. cut
        if keep <= 0:
            continue
        before, after = base.narrow(out_dim, 0, keep), out.narrow(out_dim, 0, keep)
        mismatch = compare(after, before, rtol=rtol, atol=atol)
        if mismatch is not None:
            # where it leaked depends on the length of the submission's output: detail only
            raise GradingFailure(
                f"{what} changed at earlier positions when only inputs at later positions were "
                "changed: information from the future leaks into the past",
                detail=f"positions up to {cut} changed; {mismatch.describe(what, reveal=True)}",
                hint=hint,
            )


def _perturb(seq: Seq, cut: int, rng: np.random.Generator, torch: Any) -> Any:
    """The tensor with every position after `cut` replaced by fresh noise."""
    x = seq.tensor.clone()
    first = max(cut + 1 - seq.start, 0)
    length = x.shape[seq.dim] - first
    if length <= 0:
        return x
    region = x.narrow(seq.dim, first, length)
    noise = torch.from_numpy(rng.standard_normal(tuple(region.shape)).astype("float32")) * 3 + 1
    region.copy_(noise.to(region.dtype) if region.is_floating_point() else noise.round().to(region.dtype))
    return x
