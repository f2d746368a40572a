"""Speculative decoding: the acceptance rule.

Fill in the two functions below. Read README.md first: it states every convention used here.
Every uniform number is passed in, so the results are exact and the tests can check them token by
token.
"""

import torch


def sample_index(probs: torch.Tensor, u: float) -> int:
    """Sample one token id from the distribution `probs` by the inverse CDF, with the uniform `u`.

    probs: (V,), non-negative, summing to 1 up to rounding; float32, float64, float16 or bfloat16.
    u: a float in [0, 1).

    Convert `probs` to float64 and take the running totals in index order,
        totals = torch.cumsum(probs.to(torch.float64), dim=0),
    and return the FIRST index j with totals[j] > u (strictly greater), as
    torch.searchsorted(totals, u, right=True) finds it. A token of probability 0 is never returned.
    If no running total exceeds u (the totals end just below 1 by rounding and u lies past them),
    return the LAST index whose probability is > 0.

    Returns a Python int. `probs` is left unchanged.
    """
    raise NotImplementedError("sample_index: float64 cumsum, then the first index whose total exceeds u")


def verify_draft(
    draft_probs: torch.Tensor,
    draft_tokens: torch.Tensor,
    target_probs: torch.Tensor,
    uniforms: torch.Tensor,
    sample_uniform: float,
) -> list[int]:
    """Verify k drafted tokens against the target model: the accepted prefix plus one more token.

    draft_probs:  (k, V)     q_1..q_k, the draft model's distribution at each drafted position.
    draft_tokens: (k,) int64 x_1..x_k, the drafted tokens (x_i was sampled from q_i).
    target_probs: (k + 1, V) p_1..p_{k+1}, the target model's distribution at each position
                  (p_{k+1} is the one after the last drafted token).
    uniforms:     (k,)       u_1..u_k in [0, 1) (float32 or float64), one per drafted token.
    sample_uniform: a float in [0, 1), the one uniform for the final sampled token.
    k may be 0: shapes (0, V), (0,), (1, V), (0,).

    Work in float64 (convert the probabilities first). For i = 1..k, in order:
      - accept x_i iff u_i < p_i(x_i) / q_i(x_i) (strictly less). If q_i(x_i) == 0: accept iff
        p_i(x_i) > 0.
      - on the first rejection at i: append sample_index(residual, sample_uniform), where
        residual = max(0, p_i - q_i) / sum(max(0, p_i - q_i)); if that sum is 0, use p_i instead.
        Stop there: later drafted tokens are not looked at.
    If all k drafted tokens are accepted, append the bonus token sample_index(p_{k+1}, sample_uniform).

    Returns a Python list of ints: the accepted drafted tokens followed by exactly one sampled
    token (length between 1 and k + 1). No argument is modified in place.
    """
    raise NotImplementedError("verify_draft: accept while u_i < p_i(x_i) / q_i(x_i), then one more token")
