# expect: failed
# why: computes every dtype in float32 and casts the loss back to the logits' dtype: float64 logits
#   give a float64 loss with only float32's precision (about 1e-7 relative, not 1e-16)
# caught-by: test_dtypes

import torch


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    vocab = logits.shape[-1]
    # half precision has too few bits for a sum over the vocabulary: accumulate in float32
    out_dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    logits = logits.float()  # float32 for every dtype
    x = logits.reshape(-1, vocab)  # (N, V): every position of every sequence
    t = targets.reshape(-1)  # (N,)

    # stable log-sum-exp: after subtracting the max, the largest exponent is exp(0) = 1
    m = x.max(dim=-1, keepdim=True).values.detach()  # (N, 1); any constant works, so no gradient
    lse = m.squeeze(-1) + torch.log(torch.exp(x - m).sum(dim=-1))  # (N,)

    keep = t != ignore_index  # (N,)
    safe = torch.where(keep, t, 0)  # ignored positions point at class 0, then get weight 0
    target_logit = x.gather(-1, safe.unsqueeze(-1)).squeeze(-1)  # (N,)
    losses = (lse - target_logit) * keep  # -log p(target), 0 where ignored

    # mean over the positions that count; no position at all gives 0, not 0 / 0 = NaN
    return (losses.sum() / keep.sum().clamp(min=1)).to(out_dtype)
