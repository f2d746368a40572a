# expect: failed
# why: computes the ratios, the residual and the running totals in the inputs' own dtype: right in
#   float32 and float64, but in float16 and bfloat16 the rounding moves tokens across boundaries
# caught-by: test_precision
import torch


def sample_index(probs: torch.Tensor, u: float) -> int:
    """Inverse-CDF sample from `probs` (V,): the first index whose running total exceeds u."""
    weights = probs.detach()
    totals = torch.cumsum(weights, dim=0)  # (V,) the running totals, in index order
    index = int(torch.searchsorted(totals, torch.tensor([u], dtype=weights.dtype), right=True))
    if index >= weights.shape[0]:
        # u at or past the last running total (rounding): the last token with a non-zero probability
        index = int(torch.nonzero(weights > 0).max())
    return index


def residual_distribution(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """normalise(max(0, p - q)) in float64; p itself (in float64) where p - q has no positive part."""
    p, q = p.detach(), q.detach()
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
    q = draft_probs.detach()  # (k, V), in the inputs' dtype
    p = target_probs.detach()
    u = uniforms.detach().to(q.dtype)
    tokens = [int(t) for t in draft_tokens.tolist()]
    out: list[int] = []
    for i, x in enumerate(tokens):
        p_x, q_x = p[i, x], q[i, x]
        accepted = bool(p_x > 0) if float(q_x) == 0 else bool(u[i] < p_x / q_x)
        if not accepted:
            out.append(sample_index(residual_distribution(p[i], q[i]), sample_uniform))
            return out  # stop at the first rejection: later drafts are never looked at
        out.append(x)
    out.append(sample_index(p[len(tokens)], sample_uniform))  # every draft accepted: the bonus token
    return out
