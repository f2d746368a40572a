"""Dynamic loss scaling for mixed-precision training, with torch.amp.GradScaler's rules.

Fill in the LossScaler class below. Read README.md first: it explains every convention used here.
"""

import torch


class LossScaler:
    """A dynamic loss scaler on lists of tensors.

    Attributes (the tests read them by these names):
        scale           the current scale, a Python float rounded to float32
        growth_tracker  the number of finite steps in a row since the scale last changed (an int)

    One iteration: scale_loss -> backward -> (unscale, clip) -> step -> update.
    """

    def __init__(
        self,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
    ) -> None:
        """Start with scale = init_scale (rounded to float32) and growth_tracker = 0."""
        raise NotImplementedError("LossScaler.__init__: store the settings, the scale and the counter")

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """loss * torch.tensor(self.scale, dtype=torch.float32): a 0-dim float16, bfloat16 or
        float32 loss gives a float32 result, a float64 loss float64. Changes no state."""
        raise NotImplementedError("LossScaler.scale_loss: multiply the loss by the scale")

    def unscale(self, grads: list) -> tuple[list, bool]:
        """Return (unscaled, found_inf): new tensors g * (1 / scale) in each gradient's dtype
        (None entries stay None), and a Python bool, True when any element of any gradient is
        inf, -inf or NaN. Records found_inf for step() and update(). The inputs stay unchanged.

        Raises RuntimeError when called a second time in one iteration, or after step().
        """
        raise NotImplementedError("LossScaler.unscale: divide by the scale and look for inf / NaN")

    def step(self, params: list, grads: list, lr: float, max_norm: float | None = None) -> tuple[list, bool]:
        """Return (new_params, stepped), stepped a Python bool.

        If unscale() was not called in this iteration, grads are the scaled gradients: unscale
        them here (and record found_inf). If it was, grads are already unscaled: use them as they
        are, with the found_inf that unscale() recorded (never unscale twice).
        found_inf: the parameters come back unchanged (new tensors), stepped = False.
        Otherwise: with max_norm, clip the unscaled gradients as clip_grad_norm_ does
        (coef = min(max_norm / (total_norm + 1e-6), 1)); then p - lr * g for each parameter
        (one whose gradient is None stays as it is); stepped = True.
        params and grads stay unchanged. A second step() in one iteration raises RuntimeError.
        """
        raise NotImplementedError("LossScaler.step: skip on overflow, otherwise an SGD step")

    def update(self) -> None:
        """After the iteration: on overflow, scale *= backoff_factor and growth_tracker = 0;
        otherwise growth_tracker += 1, and when it reaches growth_interval, scale *= growth_factor
        (not when that exceeds float32's largest value) and growth_tracker = 0. Every new scale is
        rounded to float32. Then a new iteration begins.

        Raises RuntimeError when neither unscale() nor step() was called since the last update().
        """
        raise NotImplementedError("LossScaler.update: back off or count towards growth")
