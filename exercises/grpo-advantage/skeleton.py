"""GRPO advantages: each reward compared with the other completions of the same prompt.

Save this file as grpo.py and fill in grpo_advantages. Read README.md first: it explains every
convention used here.
"""

import torch


def grpo_advantages(
    rewards: torch.Tensor, group_size: int, eps: float = 1e-6, normalize_by_std: bool = True
) -> torch.Tensor:
    """Group-relative advantages for a batch of G prompts with `group_size` completions each.

    rewards: 1-D tensor of G * group_size rewards, in contiguous groups: rewards[0:n] are the
        completions of prompt 0, rewards[n:2n] those of prompt 1, ... (n = group_size).
    Returns a tensor of the same shape, the advantage of each reward at its position:

        A_i = (r_i - mean_g) / (std_g + eps)     normalize_by_std=True (the default)
        A_i =  r_i - mean_g                      normalize_by_std=False

    where mean_g and std_g are the mean and the UNBIASED standard deviation (divided by n - 1,
    as torch.std does by default) of the rewards of the group of r_i. eps is added to the std,
    outside the square root.

    - group_size = 1 gives zeros (one completion has nobody to be compared with), and so does a
      group whose rewards are all equal. Never NaN.
    - group_size < 1, or a length that is not a multiple of group_size, raises ValueError.
    - bool and integer rewards give a float32 result; float32 and float64 keep their dtype;
      float16 and bfloat16 are computed in float32 and cast back to the input dtype.
    - No Python loop over groups: reshape to (G, n) and reduce along dim 1.
    - rewards is left unchanged: return a new tensor (no in-place ops on rewards or its views).
    """
    raise NotImplementedError("grpo_advantages: normalise each reward within its group")
