"""Reward model loss: the Bradley-Terry pairwise loss (with Llama 2's optional margin), the pairwise
accuracy, and the reward read at each sequence's last real token. Read README.md first: it explains
every convention used here.
"""

import torch
import torch.nn.functional as F  # noqa: F401  (F.logsigmoid is the stable -log(1 + exp(-x)))


def pairwise_loss(
    r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: torch.Tensor | None = None
) -> torch.Tensor:
    """The Bradley-Terry loss of a batch of B preference pairs, as a 0-dim tensor:

        loss = mean over the B pairs of -logsigmoid(r_chosen - r_rejected - margin)

    r_chosen, r_rejected: (B,) rewards of the chosen and the rejected answers.
    margin: None (no margin, the same as zeros), or a (B,) tensor of the rewards' shape and dtype,
        SUBTRACTED inside the sigmoid (Llama 2, eq. 2; TRL's RewardTrainer).

    The mean over pairs, not the sum. The result has the rewards' dtype (float32, float64, float16
    or bfloat16); float32 and float64 are computed in their own dtype (half precision may go
    through float32 inside). It must be finite and right for any difference (|d| = 1000
    included, in float16 and bfloat16 too), with gradients equal to autograd's through
    F.logsigmoid, at d = 0 included: use F.logsigmoid (or F.softplus), never log(sigmoid(...)).
    Leave the arguments as they were: no in-place operations on them.
    """
    raise NotImplementedError("pairwise_loss: mean of -logsigmoid(r_chosen - r_rejected - margin)")


def pairwise_accuracy(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """The fraction of the B pairs ranked correctly, as a 0-dim float32 tensor (whatever the
    rewards' dtype). A pair is correct when r_chosen > r_rejected, strictly: a tie is NOT correct.

    r_chosen, r_rejected: (B,) rewards. No margin is involved.
    """
    raise NotImplementedError("pairwise_accuracy: the fraction of pairs with r_chosen > r_rejected")


def last_token_rewards(values: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The reward of each sequence: its value at its last real (non-padding) token.

    values: (B, T), the reward head's output at every position.
    attention_mask: (B, T), 1 on real tokens and 0 on padding (int64 as tokenizers return it, or
        bool). Padding may be on the right, on the left, or absent; every row has a real token.

    Returns a (B,) tensor: row b is values[b, t] at the LARGEST t with attention_mask[b, t] == 1
    (not values[:, -1], which is padding under right padding; not mask.sum() - 1, which is wrong
    under left padding). The result has values' dtype, and the gradient flows back to the selected
    positions of values. Leave the arguments as they were.
    """
    raise NotImplementedError("last_token_rewards: values at each row's last position with mask 1")
