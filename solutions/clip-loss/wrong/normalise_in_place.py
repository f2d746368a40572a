# expect: failed
# why: normalises the embeddings in place (image_emb /= its norm, the float32 copy being the tensor
#   itself): the loss is right, but the caller's embeddings are overwritten (and backward through
#   the in-place change of a leaf that requires grad is refused)
# caught-by: test_inputs_unchanged
import math

import torch
import torch.nn.functional as F

MAX_SCALE = 100.0
EPS = 1e-12  # F.normalize's default


def clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """(CE(logits_per_image, arange(N)) + CE(logits_per_text, arange(N))) / 2, with
    logits_per_image = min(exp(log_scale), 100) * normalize(image_emb) @ normalize(text_emb).T."""
    compute = torch.float64 if image_emb.dtype == torch.float64 else torch.float32
    images = image_emb.to(compute)
    texts = text_emb.to(compute)
    if not (images.requires_grad or texts.requires_grad):  # the mistake: in place whenever autograd allows it
        images /= images.norm(dim=-1, keepdim=True).clamp_min(EPS)
        texts /= texts.norm(dim=-1, keepdim=True).clamp_min(EPS)
    else:
        images = F.normalize(images, dim=-1, eps=EPS)
        texts = F.normalize(texts, dim=-1, eps=EPS)
    scale = log_scale.to(compute).exp().clamp(max=MAX_SCALE)  # 0 gradient to log_scale once clamped
    logits_per_image = scale * images @ texts.T  # (N, N): row i scores image i against every text
    logits_per_text = logits_per_image.T  # row j scores text j against every image
    labels = torch.arange(images.shape[0], device=images.device)  # pair i is image i with text i
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2


def clamp_logit_scale_(log_scale: torch.Tensor) -> torch.Tensor:
    """Clamp the stored log-scale in place to [0, ln 100], without recording it for autograd."""
    with torch.no_grad():
        log_scale.clamp_(0.0, math.log(MAX_SCALE))
    return log_scale
