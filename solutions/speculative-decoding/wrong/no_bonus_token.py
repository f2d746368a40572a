# expect: failed
# why: when all k drafted tokens are accepted returns them alone, without the bonus token sampled
#   from p_{k+1} (and returns nothing at all for k = 0)
# caught-by: test_all_accepted_bonus_token, test_no_draft, test_target_equals_draft
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
    out: list[int] = []
    for i, x in enumerate(tokens):
        p_x, q_x = float(p[i, x]), float(q[i, x])
        # accept iff u < p/q; with q = 0 the ratio is infinite (p > 0) or taken as 0 (p = 0)
        accepted = p_x > 0 if q_x == 0 else float(u[i]) < p_x / q_x
        if not accepted:
            out.append(sample_index(residual_distribution(p[i], q[i]), sample_uniform))
            return out  # stop at the first rejection: later drafts are never looked at
        out.append(x)
    return out
