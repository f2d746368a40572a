"""Reward model loss: the reference solution."""

import torch
import torch.nn.functional as F


def pairwise_loss(
    r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: torch.Tensor | None = None
) -> torch.Tensor:
    """mean(-logsigmoid(r_chosen - r_rejected - margin)), in the rewards' dtype."""
    d = r_chosen - r_rejected  # a new tensor: the caller's rewards stay as they were
    if margin is not None:
        d = d - margin  # Llama 2: the chosen reward must win by at least the margin
    # F.logsigmoid never takes the log of an underflowed sigmoid: finite at |d| = 1000
    return -F.logsigmoid(d).mean()


def pairwise_accuracy(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """The fraction of pairs with r_chosen > r_rejected (ties are not correct), as float32."""
    return (r_chosen > r_rejected).to(torch.float32).mean()


def last_token_rewards(values: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """values[b, t] at the largest t with attention_mask[b, t] == 1, for every row b."""
    real = attention_mask.to(torch.bool)
    positions = torch.arange(values.shape[-1], device=values.device)  # 0 .. T - 1
    # the largest position of a real token: padding positions count as -1, below every real one
    last = torch.where(real, positions, -1).amax(dim=-1)  # (B,)
    return values.gather(-1, last.unsqueeze(-1)).squeeze(-1)
