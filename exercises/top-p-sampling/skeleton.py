"""Sampling the next token: temperature, top-k and top-p (nucleus) filtering, and seeded sampling.

Fill in the two functions below. Read README.md first: it explains every convention used here.
"""

import torch


def filter_logits(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """Scale the logits by the temperature and remove the tokens outside the top-k and the nucleus.

    logits: (..., V), float32 or float64, any number of leading dims (also none). Every row (the
    last dim) is filtered on its own.

    In this order:
    1. Divide by `temperature` (> 0).
    2. top_k (None: off): keep every token whose logit is >= the k-th largest logit of its row.
       Ties at the threshold are KEPT, so more than k tokens may remain. k > V keeps everything.
    3. top_p (None: off), on softmax of what top-k left (renormalised over the survivors): sort
       the probabilities in decreasing order and keep the smallest prefix whose total reaches p.
       The token that crosses p is kept; the prefix stops where the total reaches p exactly.
       Equivalently: keep a token iff the total probability of the tokens before it in the sorted
       order is < p. The most probable token is always kept. top_p = 1 removes nothing (even where
       a float32 running total rounds to 1 before the last tokens).

    Returns logits / temperature with every removed token set to -inf: the shape and dtype of
    `logits`. Raises ValueError for temperature <= 0, top_k < 1, or top_p outside (0, 1].
    `logits` itself is left unchanged (no in-place ops on it).

    No Python loop over rows: sort, cumsum and scatter along dim=-1 do every row at once.
    """
    raise NotImplementedError("filter_logits: temperature, then top-k, then top-p")


def sample(
    logits: torch.Tensor,
    *,
    seed: int,
    num_samples: int = 1,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """Draw token ids from softmax(filter_logits(logits, temperature=..., top_k=..., top_p=...)).

    logits: (..., V). Returns an int64 tensor of shape (..., num_samples): for each row,
    num_samples independent draws (with replacement) from that row's filtered distribution.

    Use a generator seeded with `seed`, so that the same seed gives the same ids:
        generator = torch.Generator(device=logits.device).manual_seed(seed)
    torch.multinomial(probs, num_samples, replacement=True, generator=generator) takes probs of
    shape (V,) or (N, V): reshape the leading dims away and back.
    """
    raise NotImplementedError(
        "sample: softmax of the filtered logits, then torch.multinomial with a seeded generator"
    )
