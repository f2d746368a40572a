# expect: failed
# why: builds logits_per_text from the same matrix without the transpose, so both terms are the
#   image-to-text cross-entropy and the text-to-image direction is never trained
# caught-by: test_random_batches, test_worked_example, test_gradients
import math

import torch
import torch.nn.functional as F

MAX_SCALE = 100.0
EPS = 1e-12  # F.normalize's default


def clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """(CE(logits_per_image, arange(N)) + CE(logits_per_text, arange(N))) / 2, with
    logits_per_image = min(exp(log_scale), 100) * normalize(image_emb) @ normalize(text_emb).T."""
    compute = torch.float64 if image_emb.dtype == torch.float64 else torch.float32
    images = F.normalize(image_emb.to(compute), dim=-1, eps=EPS)  # (N, D), unit rows
    texts = F.normalize(text_emb.to(compute), dim=-1, eps=EPS)  # (N, D)
    scale = log_scale.to(compute).exp().clamp(max=MAX_SCALE)  # 0 gradient to log_scale once clamped
    logits_per_image = scale * images @ texts.T  # (N, N): row i scores image i against every text
    logits_per_text = logits_per_image  # the mistake: not transposed
    labels = torch.arange(images.shape[0], device=images.device)  # pair i is image i with text i
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2


def clamp_logit_scale_(log_scale: torch.Tensor) -> torch.Tensor:
    """Clamp the stored log-scale in place to [0, ln 100], without recording it for autograd."""
    with torch.no_grad():
        log_scale.clamp_(0.0, math.log(MAX_SCALE))
    return log_scale
