# expect: failed
# why: drops the padding rows from the cross-entropy (ignore_index) but not from the KL: the padding
#   tokens are distilled too, and counted in the batch-mean
# caught-by: test_random_rows, test_random_sequences, test_padding_logits_do_not_matter
import torch
import torch.nn.functional as F


def distillation_loss(student_logits, teacher_logits, labels, temperature=2.0, alpha=0.5, ignore_index=-100):
    vocab = student_logits.shape[-1]
    compute = torch.float64 if student_logits.dtype == torch.float64 else torch.float32
    student = student_logits.reshape(-1, vocab).to(compute)
    teacher = teacher_logits.detach().reshape(-1, vocab).to(compute)
    labels = labels.reshape(-1)
    log_p_student = F.log_softmax(student / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher / temperature, dim=-1)
    # every row, padding included
    soft = F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="batchmean") * temperature**2
    if bool((labels == ignore_index).all()):
        return student.sum() * 0.0
    hard = F.cross_entropy(student, labels, ignore_index=ignore_index)
    return alpha * soft + (1 - alpha) * hard
