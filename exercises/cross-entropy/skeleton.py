"""The cross-entropy loss of a language model. Save this file as loss.py and fill in
cross_entropy. Read README.md first: it explains every convention used here."""

import torch


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """The mean negative log-likelihood of `targets` under softmax(`logits`).

    Shapes: logits (..., V), any number of leading dims (also none); targets (...), int64 class
    ids in 0..V-1, or `ignore_index`. The class dimension is the LAST one.

    Returns a 0-dim tensor: the mean over the positions whose target is not ignore_index of

        logsumexp(x) - x[t],   where logsumexp(x) = m + log(sum(exp(x - m))), m = max(x)

    (subtracting the row's max keeps exp from overflowing; never take the log of a softmax).

    - Ignored positions count neither in the sum nor in the number of positions averaged over.
      If every position is ignored, the loss is 0 (not NaN).
    - float16 and bfloat16 logits are converted to float32 first and give a float32 loss;
      float32 and float64 are computed in their own dtype.
    - Use differentiable tensor operations only: autograd must give the loss's gradient.
    - Leave logits and targets as they are: replace ignored targets in a new tensor
      (torch.where), never in targets itself.
    - No Python loop over positions.

    Not allowed: F.cross_entropy, F.nll_loss, F.log_softmax, torch.log_softmax, torch.logsumexp.

    Example: logits [[2., 1., 0.]], targets [0]  ->  log(e^2 + e^1 + e^0) - 2 = 0.4076
    """
    raise NotImplementedError("cross_entropy: a stable log-sum-exp, the target logits, a masked mean")
