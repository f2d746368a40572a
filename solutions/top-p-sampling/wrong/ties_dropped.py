# expect: failed
# why: top-k keeps exactly k tokens with torch.topk, so tokens tied with the k-th largest logit are
#   dropped (and which of them survive is up to topk's internal order)
# caught-by: test_random_top_k, test_top_k_keeps_ties
import torch


def _check(temperature, top_k, top_p):
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    if top_k is not None and top_k < 1:
        raise ValueError("top_k must be >= 1")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError("top_p must be in (0, 1]")


def filter_logits(logits, *, temperature=1.0, top_k=None, top_p=None):
    _check(temperature, top_k, top_p)
    logits = logits / temperature
    if top_k is not None:
        values, index = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1)
        logits = torch.full_like(logits, float("-inf")).scatter(-1, index, values)
    if top_p is not None:
        sorted_probs, order = torch.sort(torch.softmax(logits, dim=-1), dim=-1, descending=True)
        before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        remove_sorted = before >= top_p
        logits = logits.masked_fill(remove_sorted.scatter(-1, order, remove_sorted), float("-inf"))
    return logits


def sample(logits, *, seed, num_samples=1, temperature=1.0, top_k=None, top_p=None):
    probs = torch.softmax(filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p), dim=-1)
    generator = torch.Generator().manual_seed(seed)
    ids = torch.multinomial(
        probs.reshape(-1, probs.shape[-1]), num_samples, replacement=True, generator=generator
    )
    return ids.reshape(*probs.shape[:-1], num_samples)
