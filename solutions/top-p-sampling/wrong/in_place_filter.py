# expect: failed
# why: divides only when the temperature is not 1 and then removes tokens by assigning -inf in place
#   (logits[remove] = -inf): with temperature 1 that writes into the caller's logits
# caught-by: test_filter_leaves_the_logits_unchanged, test_sample_leaves_the_logits_unchanged
import torch


def filter_logits(logits, *, temperature=1.0, top_k=None, top_p=None):
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    if top_k is not None and top_k < 1:
        raise ValueError("top_k must be at least 1")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError("top_p must be in (0, 1]")
    if temperature != 1.0:
        logits = logits / temperature
    if top_k is not None:
        k = min(top_k, logits.shape[-1])
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        logits[logits < kth] = float("-inf")
    if top_p is not None and top_p < 1:
        probs = torch.softmax(logits, dim=-1)
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
        remove_sorted = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= top_p
        logits[remove_sorted.scatter(-1, order, remove_sorted)] = float("-inf")
    return logits


def sample(logits, *, seed, num_samples=1, temperature=1.0, top_k=None, top_p=None):
    probs = torch.softmax(filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p), dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    generator = torch.Generator(device=logits.device).manual_seed(seed)
    ids = torch.multinomial(flat, num_samples, replacement=True, generator=generator)
    return ids.reshape(*probs.shape[:-1], num_samples)
