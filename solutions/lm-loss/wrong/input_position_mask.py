# expect: failed
# why: the mask follows the input position (tokens[:, :-1] != ignore_index) instead of the target:
#   the prediction of the first padding token is counted, and with a masked prompt the prediction
#   of the first answer token is dropped
# caught-by: test_right_padding_is_ignored, test_masked_prompts

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
    keep = tokens[:, :-1] != ignore_index  # the mistake: the mask follows the input position
    log_probs = torch.log_softmax(pred, dim=-1)  # stable: max subtracted inside
    safe = torch.where(target == ignore_index, 0, target)  # a valid index for gather
    nll = -log_probs.gather(-1, safe.unsqueeze(-1)).squeeze(-1)  # (B, T - 1)
    # one mean over every counted token of the batch; no token at all gives 0, not 0 / 0 = NaN
    return (nll * keep).sum() / keep.sum().clamp(min=1)


def perplexity(logits: torch.Tensor, tokens: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """exp of the mean loss per token (1.0 when no token counts)."""
    return torch.exp(lm_loss(logits, tokens, ignore_index))
