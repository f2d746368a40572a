"""Public tests: the worked example of the README, and the basic rules of the scaler.

Run them with `grader test loss-scaling loss_scaling.py`.
"""

import pytest
import torch

from grader.testing import assert_close, expect

INF, NAN = float("inf"), float("nan")
STEPPED_ON_INF = "stepped although a gradient held inf or NaN: skip the step whenever found_inf"


def test_defaults(submission):
    """LossScaler() starts at scale 2^16 = 65536.0 with growth_tracker 0."""
    scaler = submission.LossScaler()
    assert_close(scaler.scale, 65536.0, what="LossScaler().scale")
    assert_close(scaler.growth_tracker, 0, what="LossScaler().growth_tracker")


def test_scale_loss(submission):
    """scale_loss(2.0) at scale 8 is 16.0; a float16 loss comes back in float32 (no overflow)."""
    scaler = submission.LossScaler(init_scale=8.0)
    assert_close(scaler.call("scale_loss", torch.tensor(2.0)), torch.tensor(16.0))
    big = submission.LossScaler()  # 2^16
    assert_close(
        big.call("scale_loss", torch.tensor(2.0, dtype=torch.float16)),
        torch.tensor(131072.0),
        what="scale_loss of a float16 loss of 2.0 at scale 2^16",
        hint="multiply by torch.tensor(scale, dtype=torch.float32): the product is float32",
    )


def test_unscale(submission):
    """unscale([[8, 16], [-4]]) at scale 8 is ([[1, 2], [-0.5]], False)."""
    scaler = submission.LossScaler(init_scale=8.0)
    grads, found_inf = scaler.call("unscale", [torch.tensor([8.0, 16.0]), torch.tensor([-4.0])])
    assert_close(grads, [torch.tensor([1.0, 2.0]), torch.tensor([-0.5])], what="the unscaled gradients")
    expect(found_inf is False, "found_inf must be False (a Python bool) when every gradient is finite")


def test_unscale_finds_inf(submission):
    """An inf in the second gradient: found_inf is True, and the inf is still there after unscaling."""
    scaler = submission.LossScaler(init_scale=8.0)
    grads, found_inf = scaler.call("unscale", [torch.tensor([8.0]), torch.tensor([16.0, INF])])
    expect(found_inf is True, "found_inf must be True when a gradient holds inf")
    assert_close(grads, [torch.tensor([1.0]), torch.tensor([2.0, INF])], what="the unscaled gradients")


def test_worked_example(submission):
    """The README's six iterations: scale 8, interval 2, lr 0.5, an inf at 3 and a NaN at 5."""
    scaler = submission.LossScaler(init_scale=8.0, growth_factor=2.0, backoff_factor=0.5, growth_interval=2)
    p = [torch.tensor([1.0, 1.0])]
    rows = [
        ([8.0, 16.0], True, [0.5, 0.0], 8.0, 1),
        ([8.0, 8.0], True, [0.0, -0.5], 16.0, 0),
        ([INF, 16.0], False, [0.0, -0.5], 8.0, 0),
        ([16.0, 0.0], True, [-1.0, -0.5], 8.0, 1),
        ([NAN, 8.0], False, [-1.0, -0.5], 4.0, 0),
        ([4.0, 4.0], True, [-1.5, -1.0], 4.0, 1),
    ]
    for i, (grad, stepped, p_after, scale, tracker) in enumerate(rows, start=1):
        p, took = scaler.call("step", p, [torch.tensor(grad)], 0.5)
        expect(took is stepped, f"iteration {i}: step() must return stepped={stepped}", detail=f"got {took}")
        assert_close(
            p,
            [torch.tensor(p_after)],
            what=f"the parameters after iteration {i}",
            hint="" if stepped else STEPPED_ON_INF,
        )
        scaler.call("update")
        assert_close(scaler.scale, scale, what=f"the scale after iteration {i}'s update")
        assert_close(scaler.growth_tracker, tracker, what=f"growth_tracker after iteration {i}'s update")


def test_clip_after_unscale(submission):
    """step(..., max_norm=1) with scaled gradient [24, 32] at scale 8: clips [3, 4] to [0.6, 0.8]."""
    scaler = submission.LossScaler(init_scale=8.0)
    p, took = scaler.call("step", [torch.zeros(2)], [torch.tensor([24.0, 32.0])], 1.0, max_norm=1.0)
    expect(took is True, "the step must be taken: the gradients are finite")
    assert_close(
        p,
        [torch.tensor([-0.6, -0.8])],
        what="the parameters after a clipped step",
        misconceptions={
            "clipped before unscaling? Clip the true (unscaled) gradients": [torch.tensor([-0.075, -0.1])],
        },
    )


def test_unscale_twice_raises(submission):
    """A second unscale() in the same iteration raises RuntimeError."""
    scaler = submission.LossScaler(init_scale=8.0)
    scaler.call("unscale", [torch.tensor([8.0])])
    with pytest.raises(RuntimeError):
        scaler.call("unscale", [torch.tensor([8.0])])
