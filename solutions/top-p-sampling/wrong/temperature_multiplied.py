# expect: failed
# why: multiplies the logits by the temperature instead of dividing: T = 2 sharpens where it should
#   flatten
# caught-by: test_temperature, test_temperature_divides, test_random_top_k
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
    logits = logits * temperature
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
    probs = torch.softmax(filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p), dim=-1)
    generator = torch.Generator().manual_seed(seed)
    ids = torch.multinomial(
        probs.reshape(-1, probs.shape[-1]), num_samples, replacement=True, generator=generator
    )
    return ids.reshape(*probs.shape[:-1], num_samples)
