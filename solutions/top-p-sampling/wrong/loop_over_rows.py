# expect: too_slow
# why: correct, but filters one row at a time in a Python loop: a dozen small tensor ops per row
# caught-by: test_speed
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
    rows = []
    for row in (logits / temperature).reshape(-1, logits.shape[-1]):  # one (V,) row at a time
        if top_k is not None:
            kth = torch.topk(row, min(top_k, row.shape[0])).values[-1]
            row = row.masked_fill(row < kth, float("-inf"))
        if top_p is not None and top_p < 1:  # top_p = 1 removes nothing
            sorted_probs, order = torch.sort(torch.softmax(row, dim=0), descending=True)
            before = torch.cumsum(sorted_probs, dim=0) - sorted_probs
            row = row.clone()
            row[order[before >= top_p]] = float("-inf")
        rows.append(row)
    return torch.stack(rows).reshape(logits.shape)


def sample(logits, *, seed, num_samples=1, temperature=1.0, top_k=None, top_p=None):
    probs = torch.softmax(filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p), dim=-1)
    generator = torch.Generator().manual_seed(seed)
    ids = torch.multinomial(
        probs.reshape(-1, probs.shape[-1]), num_samples, replacement=True, generator=generator
    )
    return ids.reshape(*probs.shape[:-1], num_samples)
