"""The language-modelling loss. Save this file as lm_loss.py and fill in lm_loss and perplexity.
Read README.md first: it explains every convention used here."""

import torch


def lm_loss(logits: torch.Tensor, tokens: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """The mean next-token cross-entropy of a batch.

    Shapes: logits (B, T, V), T >= 1; tokens (B, T), int64 ids in 0..V-1 or ignore_index.

    The shift: logits[:, t] predict tokens[:, t + 1], so logits[:, :-1] are paired with
    tokens[:, 1:] (the last position's logits and the first token are never used).

    Returns a 0-dim tensor: the mean of -log softmax(logits[b, t])[tokens[b, t + 1]] over every
    (b, t) whose TARGET tokens[b, t + 1] is not ignore_index: one mean over all the counted
    target tokens of the batch (not a mean of per-sequence means). No counted target (every
    target ignored, or T == 1): the loss is 0, not NaN.

    - Stable for large logits: torch.log_softmax (allowed), never log(softmax(x)).
    - float16 / bfloat16 logits are converted to float32 first and give a float32 loss;
      float32 and float64 are computed in their own dtype.
    - Differentiable with respect to logits (autograd gives the gradient).
    - Leave logits and tokens as they are: replace ignored targets in a new tensor (torch.where).

    Not allowed: F.cross_entropy, F.nll_loss, nn.CrossEntropyLoss, nn.NLLLoss.

    Example: logits [[[2, 1, 0], [0, 0, 0], [1, 2, 0], [5, 5, 5]]], tokens [[1, 2, 1, 0]]
        -> (2.4076 + 1.0986 + 1.4076) / 3 = 1.6379
    """
    raise NotImplementedError("lm_loss: shift, mask the ignored targets, one mean over the batch's tokens")


def perplexity(logits: torch.Tensor, tokens: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """exp(lm_loss(logits, tokens, ignore_index)): a 0-dim tensor of the loss's dtype.

    The exponential of the MEAN loss per token (not the mean of per-token exponentials); 1 when no
    target counts. Example above: exp(1.6379) = 5.1446.
    """
    raise NotImplementedError("perplexity: the exponential of the mean loss per token")
