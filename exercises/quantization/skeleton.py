"""INT8 and INT4 weight quantisation. Read README.md first: it states every convention used here.

W has the layout of torch.nn.Linear.weight: (out_features, in_features); row j makes output j.
Compute in float32, round with torch.round (half to even), and never modify an argument in place.
"""

import torch


def quantize_int8(w: torch.Tensor, per_channel: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric absmax INT8 quantisation of a 2-D weight w of shape (out, in), any floating dtype.

        w32   = w.to(torch.float32)
        scale = absmax / 127          (float32; 1.0 where absmax == 0)
        q     = clamp(round(w32 / scale), -127, 127)      round = torch.round, half to even

    per_channel=True: one scale per output channel (row of w), absmax over that row: scale (out,).
    per_channel=False: one scale for the whole tensor: scale is a 0-dim tensor ().

    Returns (q, scale): q is torch.int8 of shape (out, in), scale is float32.
    """
    raise NotImplementedError("quantize_int8: scale = absmax / 127, q = clamp(round(w / scale), -127, 127)")


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """float32 q * scale; a scale of shape (out,) applies scale[j] to row j of q, a 0-dim one to all."""
    raise NotImplementedError("dequantize_int8: q * scale, per row when scale has one value per row")


def quantize_int4(w: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric INT4 quantisation per group of group_size consecutive input features (GPTQ's scheme).

    w is 2-D (out, in), any floating dtype, computed in float32. Group k of row j is
    w[j, k * group_size : (k + 1) * group_size]. For each group:

        lo    = min(min(group), 0)            hi = max(max(group), 0)
        scale = (hi - lo) / 15                (1.0 for an all-zero group, hi == lo == 0)
        zero  = clamp(round(-lo / scale), 0, 15)
        q     = clamp(round(w / scale) + zero, 0, 15)

    Raises ValueError unless group_size is a positive even number that divides in.

    Returns (q, scale, zero_point): q torch.uint8 (out, in) with codes 0..15 (NOT packed),
    scale float32 (out, in // group_size), zero_point torch.uint8 (out, in // group_size).
    """
    raise NotImplementedError("quantize_int4: per-group scale and zero point, codes in 0..15")


def dequantize_int4(
    q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, group_size: int
) -> torch.Tensor:
    """float32 (q - zero_point) * scale for unpacked codes q (out, in), with each group's own scale
    and zero point (shapes (out, in // group_size)). Subtract in float32: uint8 would wrap around."""
    raise NotImplementedError("dequantize_int4: (q - zero_point) * scale, group by group")


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Pack codes 0..15 two per byte along the last dim: (..., n) -> torch.uint8 (..., n // 2).

        packed[..., i] = q[..., 2 * i] | (q[..., 2 * i + 1] << 4)

    Element 2i goes in the LOW nibble (bits 0-3), element 2i + 1 in the HIGH nibble (bits 4-7).
    Raises ValueError when n is odd.
    """
    raise NotImplementedError("pack_int4: element 2i in the low nibble, 2i + 1 in the high nibble")


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """The exact inverse of pack_int4: torch.uint8 (..., m) -> torch.uint8 codes (..., 2m)."""
    raise NotImplementedError("unpack_int4: low nibble first, then high nibble")


def int4_matmul(
    x: torch.Tensor, packed: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, group_size: int
) -> torch.Tensor:
    """x @ W_hat.T in float32, where W_hat = dequantize_int4(unpack_int4(packed), scale, zero_point,
    group_size) is the (out, in) dequantised weight and x is float32 of shape (..., in).
    Returns float32 of shape (..., out)."""
    raise NotImplementedError("int4_matmul: unpack, dequantise, then x @ W_hat.T")
