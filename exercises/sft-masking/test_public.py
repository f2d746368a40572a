"""Public tests: the worked example of the lesson and small cases you can check by hand.

Run them with `grader test sft-masking sft_batch.py`.
"""

import pytest
import torch
import torch.nn.functional as F

from grader.testing import assert_close, expect

X = -100  # the ignore index, short for the tables below
A = ([5, 6], [7, 8, 9])
B = ([1], [2])
C = ([], [3, 4])

PROMPT_LABELED = "the labels match the prompt left unmasked: every prompt token's label is -100"
PRESHIFTED = (
    "the labels match labels shifted by one position: keep them aligned with input_ids (the loss shifts)"
)
LEFT_PADDED = "the output matches left padding: the padding goes after the example's tokens (right padding)"
PAD_ATTENDED = "the attention mask matches 1 on the padding too: padding positions get 0"
FIRST_LABEL_KEPT = (
    "the labels match packed examples whose first label is kept: the first label of every packed "
    "example is -100, or the previous example's last token is trained to predict it"
)
POSITIONS_RUN_ON = (
    "the position ids match one count along the whole row: they restart at 0 at every example's first token"
)
PLAIN_CAUSAL = (
    "the mask matches a plain causal mask over the whole row: a query attends only keys of its own example "
    "(block-diagonal causal)"
)
PAD_ROWS_EMPTY = (
    "the mask matches padding rows with no allowed key, which a plain softmax turns into NaN: a padding "
    "position attends to itself"
)
PAD_SEES_ALL = (
    "the mask matches padding positions that attend the tokens before them: a padding position attends "
    "to itself only"
)
NO_SHIFT = "the loss matches logits[:, t] paired with labels[:, t]: pair logits[:, :-1] with labels[:, 1:]"
DOUBLE_SHIFT = "the loss matches logits[:, t] paired with labels[:, t + 2]: shift once, inside the loss"
WRONG_WAY = "the loss matches logits[:, 1:] paired with labels[:, :-1]: logits[:, t] predict labels[:, t + 1]"


def ints(rows):
    return torch.tensor(rows, dtype=torch.int64)


def check_dict(out, keys, name):
    expect(isinstance(out, dict), f"{name} must return a dict", detail=f"got {type(out).__name__}")
    missing = [k for k in keys if k not in out]
    expect(not missing, f"{name} must return the keys {', '.join(keys)}", detail=f"missing: {missing}")


def test_pad_batch_worked_example(submission):
    """pad_batch([A, B, C], pad_id=0): the padded batch of the lesson's worked example."""
    out = submission.pad_batch([A, B, C], 0)
    check_dict(out, ("input_ids", "attention_mask", "labels"), "pad_batch")
    assert_close(
        out["input_ids"],
        ints([[5, 6, 7, 8, 9], [1, 2, 0, 0, 0], [3, 4, 0, 0, 0]]),
        what="input_ids",
        misconceptions={LEFT_PADDED: ints([[5, 6, 7, 8, 9], [0, 0, 0, 1, 2], [0, 0, 0, 3, 4]])},
    )
    assert_close(
        out["attention_mask"],
        ints([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 0, 0, 0]]),
        what="attention_mask",
        misconceptions={
            PAD_ATTENDED: torch.ones(3, 5, dtype=torch.int64),
            LEFT_PADDED: ints([[1, 1, 1, 1, 1], [0, 0, 0, 1, 1], [0, 0, 0, 1, 1]]),
        },
    )
    assert_close(
        out["labels"],
        ints([[X, X, 7, 8, 9], [X, 2, X, X, X], [3, 4, X, X, X]]),
        what="labels",
        misconceptions={
            PROMPT_LABELED: ints([[5, 6, 7, 8, 9], [1, 2, X, X, X], [3, 4, X, X, X]]),
            PRESHIFTED: ints([[X, 7, 8, 9, X], [2, X, X, X, X], [4, X, X, X, X]]),
            LEFT_PADDED: ints([[X, X, 7, 8, 9], [X, X, X, X, 2], [X, X, X, 3, 4]]),
        },
    )


def test_pack_batch_worked_example(submission):
    """pack_batch([A, B, C], row_len=6, pad_id=0): A alone in row 0, then B and C in row 1."""
    out = submission.pack_batch([A, B, C], 6, 0)
    check_dict(out, ("input_ids", "labels", "position_ids", "attention_mask"), "pack_batch")
    assert_close(out["input_ids"], ints([[5, 6, 7, 8, 9, 0], [1, 2, 3, 4, 0, 0]]), what="input_ids")
    assert_close(
        out["labels"],
        ints([[X, X, 7, 8, 9, X], [X, 2, X, 4, X, X]]),
        what="labels",
        misconceptions={
            FIRST_LABEL_KEPT: ints([[X, X, 7, 8, 9, X], [X, 2, 3, 4, X, X]]),
            PROMPT_LABELED: ints([[X, 6, 7, 8, 9, X], [X, 2, X, 4, X, X]]),
            PRESHIFTED: ints([[X, 7, 8, 9, X, X], [2, X, 4, X, X, X]]),
        },
    )
    assert_close(
        out["position_ids"],
        ints([[0, 1, 2, 3, 4, 0], [0, 1, 0, 1, 0, 0]]),
        what="position_ids",
        misconceptions={POSITIONS_RUN_ON: ints([[0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5]])},
    )
    one = torch.ones(6, 6, dtype=torch.bool)
    row0 = one.tril().clone()
    row0[5, :5] = False  # the padding attends to itself only
    row1 = torch.zeros(6, 6, dtype=torch.bool)
    row1[:2, :2] = one[:2, :2].tril()  # B
    row1[2:4, 2:4] = one[:2, :2].tril()  # C
    row1[4, 4] = row1[5, 5] = True  # padding
    expected = torch.stack([row0, row1])
    mask = out["attention_mask"]
    expect(
        isinstance(mask, torch.Tensor) and mask.dtype == torch.bool and tuple(mask.shape) == (2, 6, 6),
        "attention_mask must be a bool tensor of shape (rows, row_len, row_len) = (2, 6, 6)",
        detail=f"got {getattr(mask, 'dtype', type(mask))} of shape {tuple(getattr(mask, 'shape', ()))}",
    )
    # first the part of row 1 where B and C attend (queries and keys 0..3), then the whole mask
    assert_close(
        out["attention_mask"][1, :4, :4],
        expected[1, :4, :4],
        what="attention_mask[1, :4, :4] (B and C)",
        misconceptions={PLAIN_CAUSAL: one[:4, :4].tril()},
    )
    empty_pads = expected.clone()
    empty_pads[0, 5, 5] = empty_pads[1, 4, 4] = empty_pads[1, 5, 5] = False
    pads_see_all = expected.clone()
    pads_see_all[0, 5] = True
    pads_see_all[1, 4, :5] = pads_see_all[1, 5] = True
    assert_close(
        out["attention_mask"],
        expected,
        what="attention_mask",
        misconceptions={PAD_ROWS_EMPTY: empty_pads, PAD_SEES_ALL: pads_see_all},
    )


def test_pack_exact_fill(submission):
    """Lengths 3 + 3 with row_len 6 fill row 0 exactly; the third example starts row 1."""
    out = submission.pack_batch([([1], [2, 3]), ([4, 5], [6]), ([7], [8])], 6, 0)
    check_dict(out, ("input_ids", "labels", "position_ids", "attention_mask"), "pack_batch")
    assert_close(out["input_ids"], ints([[1, 2, 3, 4, 5, 6], [7, 8, 0, 0, 0, 0]]), what="input_ids")
    assert_close(out["position_ids"], ints([[0, 1, 2, 0, 1, 2], [0, 1, 0, 0, 0, 0]]), what="position_ids")


def test_loss_against_cross_entropy(submission):
    """sft_loss on two rows with two targets each equals F.cross_entropy on the shifted pair."""
    labels = ints([[X, 3, 1, X, X], [X, X, 2, 0, X]])
    logits = torch.randn(2, 5, 4)
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, 4), labels[:, 1:].reshape(-1), ignore_index=-100)

    def pairs(lg, lb):
        return F.cross_entropy(lg.reshape(-1, 4), lb.reshape(-1), ignore_index=-100)

    assert_close(
        submission.sft_loss(logits, labels),
        expected,
        what="the loss",
        misconceptions={
            NO_SHIFT: pairs(logits, labels),
            DOUBLE_SHIFT: pairs(logits[:, :-2], labels[:, 2:]),
            WRONG_WAY: pairs(logits[:, 1:], labels[:, :-1]),
        },
    )


@pytest.mark.parametrize(
    "call",
    [
        pytest.param("long", id="example-longer-than-row"),
        pytest.param("empty-response", id="empty-response"),
    ],
)
def test_errors(submission, call):
    """pack_batch rejects an example longer than row_len, and both builders an empty response."""
    with pytest.raises(ValueError):
        if call == "long":
            submission.pack_batch([([1, 2], [3]), ([1, 2, 3], [4, 5])], 4, 0)
        else:
            submission.pad_batch([([1, 2], [3]), ([4], [])], 0)
