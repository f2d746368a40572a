# expect: failed
# why: replaces the ignored targets by 0 in the caller's targets tensor itself (targets[...] = 0):
#   the loss is right, but the caller's targets have lost their ignored positions
# caught-by: test_inputs_left_unchanged

import torch


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    vocab = logits.shape[-1]
    # half precision has too few bits for a sum over the vocabulary: accumulate in float32
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    x = logits.reshape(-1, vocab)  # (N, V): every position of every sequence
    t = targets.reshape(-1)  # (N,)

    # stable log-sum-exp: after subtracting the max, the largest exponent is exp(0) = 1
    m = x.max(dim=-1, keepdim=True).values.detach()  # (N, 1); any constant works, so no gradient
    lse = m.squeeze(-1) + torch.log(torch.exp(x - m).sum(dim=-1))  # (N,)

    keep = t != ignore_index  # (N,)
    t[~keep] = 0  # ignored positions point at class 0 (in place: t is a view of targets)
    safe = t
    target_logit = x.gather(-1, safe.unsqueeze(-1)).squeeze(-1)  # (N,)
    losses = (lse - target_logit) * keep  # -log p(target), 0 where ignored

    # mean over the positions that count; no position at all gives 0, not 0 / 0 = NaN
    return losses.sum() / keep.sum().clamp(min=1)
