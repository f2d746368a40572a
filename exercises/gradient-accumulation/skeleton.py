"""Gradient accumulation: the gradient of a full batch's mean token loss, built up one
micro-batch at a time.

Fill in `accumulate_gradients` below. Read README.md first: it explains every convention used here.
"""

import torch
import torch.nn.functional as F  # noqa: F401  (F.cross_entropy is the intended tool)


def accumulate_gradients(
    model: torch.nn.Linear, micro_batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
) -> torch.Tensor:
    """Leave in model.weight.grad and model.bias.grad the gradient of the full batch's loss.

    model: a torch.nn.Linear(d, V); logits = model(inputs).
    micro_batches: k >= 1 tuples (inputs, targets, mask):
        inputs  (b_i, T_i, d) float32
        targets (b_i, T_i) int64, class ids in 0..V-1 (arbitrary at padding positions: never used)
        mask    (b_i, T_i) bool, True for a real token, False for padding
        b_i and T_i may differ between micro-batches; one micro-batch may have no real token.

    The loss of the whole batch:
        L = (sum over the real tokens of ALL micro-batches of cross_entropy(logits_t, target_t)) / N
        N = the number of real tokens of the whole batch (mask True, over every micro-batch)

    Do it as gradient accumulation:
      - discard whatever .grad held before the call (model.zero_grad());
      - count N first;
      - for each micro-batch: one forward, S_i = the SUM of its real tokens' cross-entropy,
        and (S_i / N).backward(): backward adds into .grad. Never concatenate the micro-batches.
    Do not change the model's weights (no optimizer step) nor the micro-batches.

    Returns L as a 0-dim float32 tensor, detached (the value a training loop logs).
    """
    raise NotImplementedError("accumulate_gradients: one backward per micro-batch, scaled by 1 / N")
