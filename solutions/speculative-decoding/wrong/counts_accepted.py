# expect: failed
# why: evaluates every drafted token and keeps as many as passed their test (accepted.sum()),
#   instead of stopping at the first rejection: a draft accepted after a rejected one is kept
# caught-by: test_worked_example, test_random_drafts
import torch


def sample_index(probs: torch.Tensor, u: float) -> int:
    """Inverse-CDF sample from `probs` (V,): the first index whose running total exceeds u."""
    weights = probs.detach().to(torch.float64)
    totals = torch.cumsum(weights, dim=0)  # (V,) the running totals, in index order
    index = int(torch.searchsorted(totals, torch.tensor([u], dtype=torch.float64), right=True))
    if index >= weights.shape[0]:
        # u at or past the last running total (rounding): the last token with a non-zero probability
        index = int(torch.nonzero(weights > 0).max())
    return index


def residual_distribution(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """normalise(max(0, p - q)) in float64; p itself (in float64) where p - q has no positive part."""
    p, q = p.detach().to(torch.float64), q.detach().to(torch.float64)
    residual = torch.clamp(p - q, min=0.0)
    total = residual.sum()
    if total <= 0:
        return p
    return residual / total


def verify_draft(
    draft_probs: torch.Tensor,
    draft_tokens: torch.Tensor,
    target_probs: torch.Tensor,
    uniforms: torch.Tensor,
    sample_uniform: float,
) -> list[int]:
    """The accepted prefix of the drafted tokens, plus one token sampled by the target side."""
    q = draft_probs.detach().to(torch.float64)  # (k, V)
    p = target_probs.detach().to(torch.float64)  # (k + 1, V)
    u = uniforms.detach().to(torch.float64)  # (k,)
    tokens = [int(t) for t in draft_tokens.tolist()]
    k = len(tokens)
    index = torch.arange(k)
    p_x, q_x = p[index, draft_tokens], q[index, draft_tokens]  # (k,)
    ratio = torch.where(q_x > 0, p_x / q_x.clamp(min=1e-300), (p_x > 0).to(torch.float64) * 2)
    n = int((u < ratio).sum())  # how many drafts passed their test
    out = tokens[:n]
    if n < k:
        out.append(sample_index(residual_distribution(p[n], q[n]), sample_uniform))
        return out
    out.append(sample_index(p[len(tokens)], sample_uniform))  # every draft accepted: the bonus token
    return out
