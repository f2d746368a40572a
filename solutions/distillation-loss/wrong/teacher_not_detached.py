# expect: failed
# why: never detaches the teacher's logits: the loss sends gradients into the frozen teacher
# caught-by: test_teacher_is_frozen
import torch
import torch.nn.functional as F


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 2.0,
    alpha: float = 0.5,
    ignore_index: int = -100,
) -> torch.Tensor:
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, labels), both averaged
    over the rows whose label is not ignore_index."""
    vocab = student_logits.shape[-1]
    compute = torch.float64 if student_logits.dtype == torch.float64 else torch.float32
    student = student_logits.reshape(-1, vocab).to(compute)  # (N, V); half inputs go to float32
    teacher = teacher_logits.reshape(-1, vocab).to(compute)
    labels = labels.reshape(-1)
    keep = labels != ignore_index  # (N,)
    student, teacher, targets = student[keep], teacher[keep], labels[keep]  # (n, V), (n, V), (n,)
    rows = max(int(keep.sum()), 1)  # an all-padding batch gives 0, not 0 / 0

    log_p_student = F.log_softmax(student / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher / temperature, dim=-1)
    # KL(teacher || student) summed over the kept rows; kl_div takes the student's log-probs first
    kl = F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="sum")
    soft = kl / rows * temperature**2
    hard = F.cross_entropy(student, targets, reduction="sum") / rows  # at temperature 1
    return alpha * soft + (1 - alpha) * hard
