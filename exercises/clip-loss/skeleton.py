"""CLIP's contrastive loss (Radford et al., 2021), as open_clip's ClipLoss computes it.

Save this file as clip_loss.py and fill in the two functions. Read README.md first: it explains
every convention used here.
"""

import math  # noqa: F401  (math.log(100) is the largest log-scale)

import torch
import torch.nn.functional as F  # noqa: F401  (F.normalize and F.cross_entropy help)


def clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """The symmetric contrastive loss of a batch of N (image, text) pairs, a 0-dim tensor.

    image_emb, text_emb: (N, D); row i of each is pair i (image i goes with text i). Any norms.
    log_scale: a 0-dim tensor, the stored log of the logit scale (a learned parameter).

        images = F.normalize(image_emb, dim=-1, eps=1e-12)      (each row divided by max(||row||, eps))
        texts  = F.normalize(text_emb, dim=-1, eps=1e-12)
        scale  = min(exp(log_scale), 100)                       (torch.clamp(log_scale.exp(), max=100))
        logits_per_image = scale * images @ texts.T             (N, N)
        logits_per_text  = logits_per_image.T
        labels = torch.arange(N)
        loss = (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2

    Gradients flow to image_emb, text_emb and log_scale (0 for log_scale while the scale is clamped).
    Dtype: float16, bfloat16 and float32 embeddings are computed in float32 and give a float32 loss;
    float64 embeddings give a float64 loss. The inputs are left unchanged (no in-place operations).
    """
    raise NotImplementedError("clip_loss: normalise, scale, and average the two cross-entropies")


def clamp_logit_scale_(log_scale: torch.Tensor) -> torch.Tensor:
    """Clamp the stored log-scale IN PLACE to [0, ln 100], as open_clip does after every optimizer step.

    log_scale is the parameter itself (a 0-dim leaf tensor that requires grad): change its value in
    place under torch.no_grad() (an in-place change of such a leaf is refused otherwise) and return it.
    """
    raise NotImplementedError("clamp_logit_scale_: clamp the parameter in place to [0, ln 100]")
