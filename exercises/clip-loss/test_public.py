"""Public tests: the worked example of README.md and other small cases you can check by hand.

Run them with `grader test clip-loss clip_loss.py`.
"""

import math

import torch

from grader.testing import assert_close, expect, kept_in_runner

NOT_NORMALISED = (
    "the loss matches the embeddings used without L2 normalisation: normalise each row first, "
    "F.normalize(x, dim=-1)"
)
IMAGE_ONLY = (
    "the loss matches the image-to-text cross-entropy alone (one direction, or the same one twice): "
    "average it with the cross-entropy of logits_per_image.T"
)
TEXT_ONLY = (
    "the loss matches the text-to-image cross-entropy alone: average it with the cross-entropy of "
    "logits_per_image"
)
SUMMED = "the loss matches the sum of the two cross-entropies: average them, (image + text) / 2"
NO_EXP = "the loss matches log_scale used as the scale itself: the scale is exp(log_scale)"
DIVIDED = "the loss matches the cosines divided by the scale: multiply them by it"
NO_CLAMP = "the loss matches a scale that was not clamped: use min(exp(log_scale), 100)"
NOT_IN_PLACE = (
    "the parameter given is unchanged, while the clamped value was returned: clamp it in place "
    "(log_scale.clamp_(...)), since the optimizer holds that very tensor"
)
SCALE_BOUNDS = (
    "the parameter matches its value clamped to [0, 100]: the bounds are those of the log-scale, "
    "[0, ln 100], so that the scale exp(log_scale) stays in [1, 100]"
)

# The worked example: two pairs, D = 2, log_scale = ln 10.
IMAGES = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
TEXTS = torch.tensor([[0.0, 2.0], [1.0, 1.0]])


def scalar(x):
    return torch.tensor(x, dtype=torch.float32)


def test_worked_example(submission):
    """scale = 10: image-to-text 1.019898, text-to-image 1.443094, loss = 1.231496."""
    got = submission.clip_loss(IMAGES, TEXTS, torch.tensor(math.log(10.0)))
    expect(isinstance(got, torch.Tensor), "clip_loss must return a torch.Tensor")
    expect(got.dim() == 0, "the loss must be a 0-dim tensor", detail=f"got shape {tuple(got.shape)}")
    assert_close(
        got,
        scalar(1.231496),
        rtol=1e-5,
        atol=1e-5,
        misconceptions={
            NOT_NORMALISED: scalar(15.000023),
            IMAGE_ONLY: scalar(1.019898),
            TEXT_ONLY: scalar(1.443094),
            SUMMED: scalar(2.462992),
            NO_EXP: scalar(0.583197),
            DIVIDED: scalar(0.680611),
        },
    )


def test_one_pair(submission):
    """A batch of one pair: each cross-entropy is over a single class, so the loss is 0."""
    got = submission.clip_loss(
        torch.tensor([[1.0, -2.0, 0.5]]), torch.tensor([[0.3, 0.3, 3.0]]), torch.tensor(2.0)
    )
    assert_close(got, scalar(0.0), atol=1e-6)


def test_scale_is_clamped_at_100(submission):
    """log_scale = 5: exp(5) = 148.4 is clamped to 100, and the loss is 11.819805 (17.542146 unclamped)."""
    got = submission.clip_loss(IMAGES, TEXTS, torch.tensor(5.0))
    assert_close(
        got,
        scalar(11.819805),
        rtol=1e-5,
        atol=1e-5,
        misconceptions={
            NO_CLAMP: scalar(17.542146),
            NO_EXP: scalar(0.738872),
            NOT_NORMALISED: scalar(150.0),
            IMAGE_ONLY: scalar(9.497475),
            TEXT_ONLY: scalar(14.142136),
            SUMMED: scalar(23.639610),
            DIVIDED: scalar(0.691858),
        },
    )


def test_clamp_logit_scale(submission):
    """clamp_logit_scale_ clamps the tensor given in place to [0, ln 100]: -1 -> 0, 3 -> 3, 5 -> 4.6052."""
    for value, expected in [(-1.0, 0.0), (3.0, 3.0), (5.0, math.log(100.0))]:
        param = kept_in_runner(submission.clamp_logit_scale_, torch.tensor(value))
        returned = submission.clamp_logit_scale_(param)
        after = param.read_back()
        hint = ""
        if isinstance(after, torch.Tensor) and isinstance(returned, torch.Tensor):
            if float(after) == value and abs(float(returned) - expected) < 1e-6:
                hint = NOT_IN_PLACE
            elif value > math.log(100.0) and float(after) == min(value, 100.0) == float(returned):
                hint = SCALE_BOUNDS
        assert_close(
            after, torch.tensor(expected), what=f"log_scale = {value:g} after clamp_logit_scale_", hint=hint
        )
        assert_close(returned, torch.tensor(expected), what=f"what clamp_logit_scale_ returned for {value:g}")
