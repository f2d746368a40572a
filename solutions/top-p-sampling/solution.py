"""Temperature, top-k and nucleus (top-p) filtering, and seeded sampling: the reference solution."""

import torch


def filter_logits(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """logits / temperature, with every token outside the top-k and the nucleus set to -inf."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")

    logits = logits / temperature  # (..., V); a new tensor, the caller's is left alone

    if top_k is not None:
        k = min(top_k, logits.shape[-1])
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1) the k-th largest
        # `<` and not a count: every token tied with the k-th largest stays
        logits = logits.masked_fill(logits < kth, float("-inf"))

    # top_p = 1 removes nothing: it is not left to the running total, which in float32 can round
    # to 1 before the last tokens of a long tail and would remove tokens that have a probability
    if top_p is not None and top_p < 1:
        probs = torch.softmax(logits, dim=-1)  # over what top-k left
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)  # (..., V)
        # the probability of every token more likely than this one: a token is kept while the
        # tokens before it have not yet reached p, so the one that crosses p is kept too, and
        # the most likely token (nothing before it) always is
        before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # (..., V)
        remove_sorted = before >= top_p
        remove = remove_sorted.scatter(-1, order, remove_sorted)  # back to vocabulary order
        logits = logits.masked_fill(remove, float("-inf"))

    return logits


def sample(
    logits: torch.Tensor,
    *,
    seed: int,
    num_samples: int = 1,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """Token ids drawn from softmax(filter_logits(...)): shape (..., num_samples), int64."""
    filtered = filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    probs = torch.softmax(filtered, dim=-1)  # removed tokens: exp(-inf) = 0
    flat = probs.reshape(-1, probs.shape[-1])  # (N, V): multinomial takes one row per draw
    generator = torch.Generator(device=logits.device).manual_seed(seed)
    ids = torch.multinomial(flat, num_samples, replacement=True, generator=generator)  # (N, num_samples)
    return ids.reshape(*probs.shape[:-1], num_samples)
