# expect: failed
# why: sample returns the most probable token num_samples times (greedy decoding) instead of drawing
# caught-by: test_sample_distribution, test_sample_rows_independently, test_seed, test_frequencies
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
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_probs, order = torch.sort(torch.softmax(logits, dim=-1), dim=-1, descending=True)
        before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        remove_sorted = before >= top_p
        logits = logits.masked_fill(remove_sorted.scatter(-1, order, remove_sorted), float("-inf"))
    return logits


def sample(logits, *, seed, num_samples=1, temperature=1.0, top_k=None, top_p=None):
    filtered = filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    best = filtered.argmax(dim=-1, keepdim=True)  # (..., 1)
    return best.expand(*best.shape[:-1], num_samples).clone()
