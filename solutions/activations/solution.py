"""Activation functions: the reference solution."""

import math

import torch

HALF = (torch.float16, torch.bfloat16)
SQRT_HALF = 1.0 / math.sqrt(2.0)  # 1 / sqrt(2), for the exact GELU
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)  # the tanh approximation's outer constant
KAPPA = 0.044715  # ... and its cubic coefficient


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """float32 for the half dtypes (float16 overflows, both round coarsely); the input's otherwise."""
    return torch.float32 if x.dtype in HALF else x.dtype


def gelu(x: torch.Tensor) -> torch.Tensor:
    """x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2))), in x's dtype."""
    xf = x.to(_compute_dtype(x))  # x itself for float32 and float64: nothing below writes into it
    return (0.5 * xf * (1.0 + torch.erf(xf * SQRT_HALF))).to(x.dtype)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))), in x's dtype."""
    xf = x.to(_compute_dtype(x))
    inner = SQRT_2_OVER_PI * (xf + KAPPA * xf * xf * xf)  # x^3 is inf past |x| ~ 7e12: tanh gives +-1
    return (0.5 * xf * (1.0 + torch.tanh(inner))).to(x.dtype)


def silu(x: torch.Tensor) -> torch.Tensor:
    """x * sigmoid(x), in x's dtype."""
    xf = x.to(_compute_dtype(x))
    # torch.sigmoid never overflows, and its gradient s * (1 - s) is finite everywhere
    return (xf * torch.sigmoid(xf)).to(x.dtype)


def swiglu(x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor) -> torch.Tensor:
    """Llama's MLP: down_proj(silu(gate_proj(x)) * up_proj(x)), weights in nn.Linear's (out, in) layout."""
    dtype = _compute_dtype(x)
    xf = x.to(dtype)
    gate = xf @ w_gate.to(dtype).T  # (..., d_ff)
    up = xf @ w_up.to(dtype).T  # (..., d_ff)
    hidden = gate * torch.sigmoid(gate) * up  # silu on the gate only
    return (hidden @ w_down.to(dtype).T).to(x.dtype)  # (..., d_model)
