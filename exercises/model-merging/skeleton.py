"""Model merging: task arithmetic, TIES and SLERP on state dicts.

Fill in the four functions below. Read README.md first: it explains every convention used here.

A state dict is a dict[str, torch.Tensor] of floating-point tensors. All state dicts given to one
call must have the same keys (in any order) and, key by key, the same shapes; otherwise raise
ValueError with a message naming the key. Compute in float64 and return every tensor in the dtype
of the base's tensor (of a's for slerp). Never modify an input tensor in place.
"""

from collections.abc import Sequence

import torch

Tensor = torch.Tensor
StateDict = dict[str, Tensor]

DOT_THRESHOLD = 0.9995  # mergekit's: |cos(theta)| above this falls back to linear interpolation
EPS = 1e-8  # mergekit's: a vector whose norm is not above EPS is not normalised


def task_arithmetic(base: StateDict, finetuned: Sequence[StateDict], lam=1.0) -> StateDict:
    """Task arithmetic (Ilharco et al. 2023): base + sum_i lam_i * (finetuned[i] - base), key by key.

    lam: a number (the same weight for every fine-tuned model) or a sequence with one weight per
    fine-tuned model (negative weights subtract a task). A sequence of the wrong length, an empty
    `finetuned`, or state dicts whose keys or shapes differ from base's raise ValueError.

    Returns a new state dict with base's keys; each tensor in the dtype of base's tensor, computed
    in float64. base and the fine-tuned state dicts are left as they were.
    """
    raise NotImplementedError("task_arithmetic: add the weighted task vectors to the base")


def magnitude_prune(tau: Tensor, density: float) -> Tensor:
    """Keep the largest-magnitude entries of one tensor and zero the others.

    k = int(density * tau.numel()) (Python's int: rounds down). An entry is kept when
    |x| >= the k-th largest |x| of the tensor, so entries tied with the k-th largest are all kept
    (possibly more than k in all). k = 0 keeps nothing (a tensor of zeros); density = 1 keeps
    everything. density outside [0, 1] raises ValueError.

    Returns a new tensor of tau's shape and dtype; tau is left as it was.
    """
    raise NotImplementedError("magnitude_prune: keep the entries with |x| >= the k-th largest |x|")


def ties_merge(
    base: StateDict, finetuned: Sequence[StateDict], density: float, lam: float = 1.0
) -> StateDict:
    """TIES-Merging (Yadav et al. 2023), key by key, in float64:

    1. trim:     trimmed_i = magnitude_prune(finetuned[i][key] - base[key], density), per tensor.
    2. elect:    sign = +1 where sum_i trimmed_i >= 0, else -1 (the total mass; a total of 0 elects +1).
    3. disjoint: merged = (sum of the trimmed_i entries whose sign equals the elected sign)
                          / max(1, how many such entries there are)   (zeros never agree).
    4. result:   base[key] + lam * merged, in the dtype of base[key].

    Same ValueErrors as task_arithmetic, and for density outside [0, 1]. Inputs left as they were.
    """
    raise NotImplementedError("ties_merge: trim, elect the sign, take the disjoint mean")


def slerp(a: StateDict, b: StateDict, t: float) -> StateDict:
    """Spherical linear interpolation from a (t = 0) to b (t = 1), as mergekit's slerp does it.

    For every key, in float64:
        x, y = a[key] and b[key] flattened (one angle per tensor, however many dims it has)
        ux = x / ||x|| if ||x|| > EPS else x;  uy likewise
        dot = sum(ux * uy)
        if |dot| > DOT_THRESHOLD:  out = (1 - t) * x + t * y           (parallel or opposite)
        else:  theta = arccos(dot)
               out = sin((1 - t) theta) / sin(theta) * x + sin(t theta) / sin(theta) * y
        reshaped to the tensor's shape, in the dtype of a[key].
    The weights multiply the ORIGINAL x and y, not the normalised ux and uy.

    Keys or shapes of b that differ from a's raise ValueError. a and b are left as they were.
    """
    raise NotImplementedError("slerp: interpolate every tensor along the arc between a and b")
