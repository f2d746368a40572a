# expect: failed
# why: divides by the number of counted targets as it is: with none (T = 1, or every target
#   ignored) the loss is 0 / 0 = NaN, as F.cross_entropy gives, instead of 0
# caught-by: test_single_token_sequences, test_all_targets_ignored, test_no_target_at_all

import torch

HALF = (torch.float16, torch.bfloat16)


def lm_loss(logits: torch.Tensor, tokens: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Mean next-token cross-entropy over the target tokens that are not ignore_index."""
    if logits.dtype in HALF:  # a sum over the vocabulary needs float32's precision and range
        logits = logits.float()
    # position t predicts token t + 1: the last position has nothing to predict, token 0 is
    # never predicted
    pred = logits[:, :-1, :]  # (B, T - 1, V)
    target = tokens[:, 1:]  # (B, T - 1)
    keep = target != ignore_index  # the mask follows the TARGET tokens
    log_probs = torch.log_softmax(pred, dim=-1)  # stable: max subtracted inside
    safe = torch.where(keep, target, 0)  # ignored targets point at class 0, then get weight 0
    nll = -log_probs.gather(-1, safe.unsqueeze(-1)).squeeze(-1)  # (B, T - 1)
    return (nll * keep).sum() / keep.sum()  # the mistake: 0 / 0 when nothing counts


def perplexity(logits: torch.Tensor, tokens: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """exp of the mean loss per token (1.0 when no token counts)."""
    return torch.exp(lm_loss(logits, tokens, ignore_index))
