"""INT8 and INT4 weight quantisation: the reference solution."""

import torch


def quantize_int8(w: torch.Tensor, per_channel: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric absmax INT8: q = clamp(round(w / scale), -127, 127), scale = absmax / 127."""
    if w.dim() != 2:
        raise ValueError("w must be a 2-D weight of shape (out_features, in_features)")
    w32 = w.to(torch.float32)  # half weights are computed in float32; float32 stays itself (not modified)
    if per_channel:
        absmax = w32.abs().amax(dim=1)  # (out,): one scale per output channel (row of W)
    else:
        absmax = w32.abs().amax()  # (): one scale for the whole tensor
    scale = absmax / 127.0
    scale = torch.where(absmax == 0, torch.ones_like(scale), scale)  # an all-zero row: scale 1, codes 0
    s = scale.unsqueeze(-1) if per_channel else scale
    q = torch.clamp(torch.round(w32 / s), -127, 127).to(torch.int8)  # torch.round: half to even
    return q, scale


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """q * scale in float32, scale broadcast per row when it has one value per row."""
    s = scale.to(torch.float32)
    if s.dim() == 1:
        s = s.unsqueeze(-1)
    return q.to(torch.float32) * s


def _check_groups(in_features: int, group_size: int) -> None:
    if group_size < 2 or group_size % 2 != 0:
        raise ValueError("group_size must be a positive even number")
    if in_features % group_size != 0:
        raise ValueError("in_features must be a multiple of group_size")


def quantize_int4(w: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric per-group INT4 (GPTQ's min-max quantiser): codes 0..15, one scale and zero point
    per group of group_size consecutive input features."""
    if w.dim() != 2:
        raise ValueError("w must be a 2-D weight of shape (out_features, in_features)")
    out_features, in_features = w.shape
    _check_groups(in_features, group_size)
    groups = w.to(torch.float32).reshape(out_features, in_features // group_size, group_size)
    lo = torch.clamp(groups.amin(dim=-1), max=0.0)  # the range always holds 0
    hi = torch.clamp(groups.amax(dim=-1), min=0.0)
    empty = hi == lo  # only an all-zero group
    scale = (hi - lo) / 15.0
    scale = torch.where(empty, torch.ones_like(scale), scale)
    zero = torch.clamp(torch.round(-lo / scale), 0, 15)  # 0 for an all-zero group (lo = 0)
    q = torch.clamp(torch.round(groups / scale.unsqueeze(-1)) + zero.unsqueeze(-1), 0, 15)
    return q.reshape(out_features, in_features).to(torch.uint8), scale, zero.to(torch.uint8)


def dequantize_int4(
    q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, group_size: int
) -> torch.Tensor:
    """(q - zero_point) * scale, group by group, in float32."""
    out_features, in_features = q.shape
    _check_groups(in_features, group_size)
    groups = q.to(torch.float32).reshape(out_features, in_features // group_size, group_size)
    w = (groups - zero_point.to(torch.float32).unsqueeze(-1)) * scale.to(torch.float32).unsqueeze(-1)
    return w.reshape(out_features, in_features)


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Two codes per byte along the last dim: element 2i in the low nibble, 2i + 1 in the high one."""
    if q.shape[-1] % 2 != 0:
        raise ValueError("the last dim must be even to pack two 4-bit values per byte")
    q = q.to(torch.uint8)
    return q[..., 0::2] | (q[..., 1::2] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """The inverse of pack_int4: (..., n) bytes -> (..., 2n) codes in 0..15."""
    low = packed & 0x0F
    high = packed >> 4
    return torch.stack((low, high), dim=-1).reshape(*packed.shape[:-1], packed.shape[-1] * 2)


def int4_matmul(
    x: torch.Tensor, packed: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, group_size: int
) -> torch.Tensor:
    """x @ dequantize_int4(unpack_int4(packed), scale, zero_point, group_size).T in float32."""
    w = dequantize_int4(unpack_int4(packed), scale, zero_point, group_size)
    return x.to(torch.float32) @ w.T
