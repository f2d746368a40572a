# expect: failed
# why: step() always divides the gradients it is given by the scale, even after unscale() was called
#   in the same iteration (unscale, clip, step): the step is scale times too small. Passes the public
#   tests, which only step on scaled gradients
# caught-by: test_unscale_clip_step, test_unscale_then_step_matches_once, test_new_iteration_after_update

import torch

FLOAT32_MAX = torch.finfo(torch.float32).max


def _float32(value: float) -> float:
    """`value` rounded to float32, the precision PyTorch keeps its scale in."""
    return torch.tensor(value, dtype=torch.float32).item()


class LossScaler:
    """A dynamic loss scaler with torch.amp.GradScaler's rules, on lists of tensors."""

    def __init__(
        self,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
    ) -> None:
        self.scale = _float32(init_scale)
        self.growth_factor = growth_factor
        self.backoff_factor = backoff_factor
        self.growth_interval = growth_interval
        self.growth_tracker = 0
        # per iteration: None until the gradients were checked (by unscale or step)
        self._found_inf: bool | None = None
        self._stepped = False

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """loss times the current scale, the scale being a float32 tensor (torch's promotion)."""
        return loss * torch.tensor(self.scale, dtype=torch.float32, device=loss.device)

    def unscale(self, grads: list) -> tuple[list, bool]:
        """Divide every gradient by the scale (new tensors), and record whether any is non-finite."""
        if self._stepped:
            raise RuntimeError("unscale() was called after step() in this iteration: call update() first")
        if self._found_inf is not None:
            raise RuntimeError("unscale() was already called in this iteration: call update() first")
        inv = _float32(1.0 / self.scale)  # as GradScaler: the reciprocal in double, then float32
        out, found = [], False
        for g in grads:
            if g is None:  # a parameter that got no gradient
                out.append(None)
                continue
            found = found or not bool(torch.isfinite(g).all())
            out.append(g * inv)
        self._found_inf = found
        return out, found

    def step(self, params: list, grads: list, lr: float, max_norm: float | None = None) -> tuple[list, bool]:
        """One SGD step p - lr * g on unscaled (and, with max_norm, clipped) gradients, or none at all
        when non-finite gradients were found. Returns the new parameters and whether it stepped."""
        if self._stepped:
            raise RuntimeError("step() was already called in this iteration: call update() first")
        if self._found_inf is None:
            grads, _ = self.unscale(grads)
        else:  # unscale again: the gradients might still be scaled
            inv = _float32(1.0 / self.scale)
            grads = [None if g is None else g * inv for g in grads]
        self._stepped = True
        if self._found_inf:  # overflow: skip the step, keep the parameters as they are
            return [p.clone() for p in params], False
        if max_norm is not None:  # clip the TRUE gradients, as clip_grad_norm_ does
            norms = [torch.linalg.vector_norm(g) for g in grads if g is not None]
            total = torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.tensor(0.0)
            coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
            grads = [None if g is None else g * coef for g in grads]
        new = [p.clone() if g is None else p - lr * g for p, g in zip(params, grads, strict=True)]
        return new, True

    def update(self) -> None:
        """Adjust the scale after an iteration: back off on overflow, grow after growth_interval
        finite steps in a row."""
        if self._found_inf is None:
            raise RuntimeError("update() needs the gradients checked first: call unscale() or step()")
        if self._found_inf:
            self.scale = _float32(self.scale * self.backoff_factor)
            self.growth_tracker = 0
        else:
            self.growth_tracker += 1
            if self.growth_tracker == self.growth_interval:
                grown = self.scale * self.growth_factor
                if grown <= FLOAT32_MAX:  # never grow past float32's range to inf
                    self.scale = _float32(grown)
                self.growth_tracker = 0
        self._found_inf = None
        self._stepped = False
