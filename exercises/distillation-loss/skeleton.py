"""Knowledge distillation loss (Hinton, Vinyals and Dean, 2015).

Save this file as distillation_loss.py and fill in the function. Read README.md first: it
explains every convention used here.
"""

import torch
import torch.nn.functional as F  # noqa: F401  (F.log_softmax, F.kl_div and F.cross_entropy help)


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 2.0,
    alpha: float = 0.5,
    ignore_index: int = -100,
) -> torch.Tensor:
    """alpha * soft + (1 - alpha) * hard, a 0-dim tensor.

    student_logits, teacher_logits: the same shape, (N, V) or (B, L, V): one row of V logits per
        example (or per token).
    labels: int64, (N,) or (B, L): the class id of each row, or ignore_index for a padding row.

    With T = temperature, and only the n rows whose label is not ignore_index:
        soft = T**2 * (sum over the rows of KL(softmax(teacher / T) || softmax(student / T))) / n
             = T**2 * F.kl_div(F.log_softmax(student / T, -1), F.log_softmax(teacher / T, -1),
                               log_target=True, reduction="batchmean")      on the kept rows
        hard = (sum over the rows of -log softmax(student)[label]) / n      (temperature 1)
             = F.cross_entropy(student, labels, ignore_index=ignore_index)
    When every label is ignore_index (n = 0) the loss is 0, not NaN.

    alpha weights the soft term, 1 - alpha the hard term; any alpha in [0, 1], any T > 0.
    Stable for logits of any size: use log_softmax, never log(softmax(...)).
    Dtype: float16, bfloat16 and float32 logits are computed in float32 and give a float32 loss;
    float64 logits give a float64 loss.
    No gradient flows into teacher_logits (the teacher is frozen); the student's gradient is
    autograd's through the formula above. The inputs are left unchanged.
    """
    raise NotImplementedError(
        "distillation_loss: T^2 * KL(teacher || student) at temperature T, mixed with CE"
    )
