"""Activation functions: GELU (exact and tanh-approximate), SiLU, and the SwiGLU feed-forward layer.

Fill in the four functions below. Read README.md first: it explains every convention used here.
"""

import torch


def gelu(x: torch.Tensor) -> torch.Tensor:
    """The exact GELU, element by element, as torch.nn.functional.gelu(x) computes it:

        gelu(x) = x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2)))

    x: a tensor of any shape (0-d and empty included); the output has x's shape and dtype.
    float16 and bfloat16 inputs are computed in float32 and cast back to x's dtype once, at the
    end; float32 and float64 inputs are computed in their own dtype.
    Finite for every finite input (tested up to |x| = 1e30, and the whole float16 range), with
    finite gradients. x is left as it was: no in-place operations on it.
    """
    raise NotImplementedError("gelu: 0.5 * x * (1 + erf(x / sqrt(2)))")


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """The tanh approximation of GELU, as torch.nn.functional.gelu(x, approximate="tanh"):

        gelu_tanh(x) = 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))

    sqrt(2 / pi) multiplies the whole bracket. Shapes, dtypes, large inputs, gradients and
    in-place rules: as for gelu.
    """
    raise NotImplementedError("gelu_tanh: 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))")


def silu(x: torch.Tensor) -> torch.Tensor:
    """SiLU (Swish with beta = 1), as torch.nn.functional.silu(x) computes it:

        silu(x) = x * sigmoid(x)

    Shapes, dtypes, large inputs, gradients and in-place rules: as for gelu. exp(x) overflows
    past x = 88.7 in float32 (11.09 in float16): see README.md before writing the sigmoid yourself.
    """
    raise NotImplementedError("silu: x * sigmoid(x)")


def swiglu(x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor) -> torch.Tensor:
    """The SwiGLU feed-forward layer of Llama's MLP: down_proj(silu(gate_proj(x)) * up_proj(x)).

    The weights are in nn.Linear's (out_features, in_features) layout, with no biases:
        x:      (..., d_model)   any number of leading dims (also none)
        w_gate: (d_ff, d_model)  gate   = x @ w_gate.T        (..., d_ff)
        w_up:   (d_ff, d_model)  up     = x @ w_up.T          (..., d_ff)
        w_down: (d_model, d_ff)  out    = (silu(gate) * up) @ w_down.T    (..., d_model)

    SiLU goes on the gate only. The four tensors share one dtype and the output has it; float16
    and bfloat16 are computed in float32 (the matmuls included) and cast back once, at the end.
    None of the four inputs is changed in place.
    """
    raise NotImplementedError("swiglu: (silu(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T")
