"""Public tests: the worked example of README.md and other small cases you can check by hand.

Run them with `grader test distillation-loss distillation_loss.py`.
"""

import math

import torch
import torch.nn.functional as F

from grader.testing import assert_close, expect

REVERSE = (
    "the loss matches KL(student || teacher): the soft term is KL(teacher || student), "
    "F.kl_div(log p_student, log p_teacher, log_target=True)"
)
NO_T2 = "the loss matches the soft term without its factor T^2: multiply the KL by temperature ** 2"
MEAN = (
    'the loss matches the KL divided by rows x V (reduction="mean"): divide by the number of kept rows '
    'only ("batchmean")'
)
PADDING = (
    "the loss matches the padding rows counted in the soft term: drop the rows whose label is "
    "ignore_index from the KL and from its row count"
)
STUDENT_ONLY_T = (
    "the loss matches the temperature applied to the student's logits only: divide the teacher's logits "
    "by T too"
)
HARD_AT_T = "the loss matches the hard term at temperature T: the cross-entropy takes the raw student logits"
PROBS_INPUT = (
    "the loss matches F.kl_div given the student's probabilities: its first argument is the "
    "log-probabilities, F.log_softmax(student / T, dim=-1)"
)
ALPHA_SWAPPED = (
    "the loss matches alpha on the hard term: alpha weights the soft term, 1 - alpha the hard term"
)

# The worked example: two rows of V = 3 classes, T = 2, alpha = 0.7, the second row is padding.
STUDENT = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
TEACHER = torch.tensor([[4.0, 2.0, 0.0], [1.0, 1.0, 5.0]])
LABELS = torch.tensor([0, -100])
SOFT = 4 * 0.060269  # T^2 * KL(teacher || student) of row 0
HARD = -math.log(math.exp(2) / (math.exp(2) + math.exp(1) + 1))  # 0.407606


def scalar(x):
    return torch.tensor(x, dtype=torch.float32)


def test_worked_example(submission):
    """T = 2, alpha = 0.7: soft = 4 x 0.060269 = 0.241076, hard = 0.407606, loss = 0.291035."""
    got = submission.distillation_loss(STUDENT, TEACHER, LABELS, temperature=2.0, alpha=0.7)
    expect(isinstance(got, torch.Tensor), "distillation_loss must return a torch.Tensor")
    expect(got.dim() == 0, "the loss must be a 0-dim tensor", detail=f"got shape {tuple(got.shape)}")
    assert_close(
        got,
        scalar(0.291035),
        rtol=1e-5,
        atol=1e-5,
        misconceptions={
            NO_T2: scalar(0.164470),
            REVERSE: scalar(0.310604),
            MEAN: scalar(0.178533),
            PADDING: scalar(1.250418),
            STUDENT_ONLY_T: scalar(1.000764),
            HARD_AT_T: scalar(0.372834),
            ALPHA_SWAPPED: scalar(0.357647),
            PROBS_INPUT: scalar(-3.409306),
        },
    )


def test_alpha_one_is_the_soft_term(submission):
    """alpha = 1: the loss is the soft term alone, 4 x KL = 0.241076 (the labels only pick the rows)."""
    got = submission.distillation_loss(STUDENT, TEACHER, LABELS, temperature=2.0, alpha=1.0)
    assert_close(
        got,
        scalar(SOFT),
        rtol=1e-5,
        atol=1e-5,
        misconceptions={
            NO_T2: scalar(0.060269),
            REVERSE: scalar(0.269032),
            MEAN: scalar(0.080359),
            PADDING: scalar(1.611623),
            STUDENT_ONLY_T: scalar(1.254975),
            ALPHA_SWAPPED: scalar(HARD),
        },
    )


def test_alpha_zero_is_cross_entropy(submission):
    """alpha = 0: the loss is F.cross_entropy(student_logits, labels, ignore_index=-100) = 0.407606."""
    got = submission.distillation_loss(STUDENT, TEACHER, LABELS, temperature=2.0, alpha=0.0)
    assert_close(
        got,
        F.cross_entropy(STUDENT, LABELS),
        rtol=1e-5,
        atol=1e-5,
        misconceptions={HARD_AT_T: F.cross_entropy(STUDENT / 2.0, LABELS), ALPHA_SWAPPED: scalar(SOFT)},
    )


def test_teacher_equal_to_student(submission):
    """A teacher equal to the student: the KL is 0, so the loss is (1 - alpha) x the cross-entropy."""
    logits = torch.tensor([[1.0, -2.0, 0.5, 3.0], [0.0, 0.0, 1.0, -1.0], [2.0, 2.0, -1.0, 0.0]])
    labels = torch.tensor([3, 2, 0])
    got = submission.distillation_loss(logits, logits.clone(), labels, temperature=3.0, alpha=0.25)
    assert_close(
        got,
        0.75 * F.cross_entropy(logits, labels),
        rtol=1e-5,
        atol=1e-5,
        misconceptions={
            HARD_AT_T: scalar(0.724551),
            STUDENT_ONLY_T: scalar(0.795243),
            ALPHA_SWAPPED: scalar(0.134204),
        },
    )


def test_sequences_with_padding(submission):
    """(B, L, V) = (2, 3, 3) logits and (2, 3) labels, the last token of each sequence padding: n = 4."""
    student = torch.tensor(
        [
            [[2.0, 1.0, 0.0], [0.0, 1.0, 0.0], [9.0, -9.0, 9.0]],
            [[1.0, 1.0, 1.0], [0.5, 0.0, -0.5], [7.0, 7.0, 0.0]],
        ]
    )
    teacher = torch.tensor(
        [
            [[4.0, 2.0, 0.0], [1.0, 2.0, 0.0], [0.0, 9.0, 0.0]],
            [[3.0, 0.0, 0.0], [0.5, 0.0, -0.5], [0.0, 0.0, 8.0]],
        ]
    )
    labels = torch.tensor([[0, 1, -100], [2, 0, -100]])  # the last token of each sequence is padding
    keep = labels != -100
    s, t = student[keep] / 2.0, teacher[keep] / 2.0
    soft = 4.0 * F.kl_div(s.log_softmax(-1), t.log_softmax(-1), log_target=True, reduction="batchmean")
    hard = F.cross_entropy(student.reshape(-1, 3), labels.reshape(-1))
    got = submission.distillation_loss(student, teacher, labels, temperature=2.0, alpha=0.5)
    reverse = 4.0 * F.kl_div(t.log_softmax(-1), s.log_softmax(-1), log_target=True, reduction="batchmean")
    padded = 4.0 * F.kl_div(
        (student / 2).log_softmax(-1), (teacher / 2).log_softmax(-1), log_target=True, reduction="sum"
    )
    assert_close(
        got,
        0.5 * soft + 0.5 * hard,
        rtol=1e-5,
        atol=1e-5,
        misconceptions={
            PADDING: 0.5 * padded / 6 + 0.5 * hard,
            NO_T2: 0.5 * soft / 4 + 0.5 * hard,
            REVERSE: 0.5 * reverse + 0.5 * hard,
        },
    )
