"""Bit-level arithmetic of BLIP: quantization, frozen intervals and bit statistics.

Pure tensor functions (no modules, no state). A parameter theta of a layer with quantization range
``bound`` b is read as u = theta / b in (-1, 1); its n leading bits are those of
Q(u, n) = round(u * 2^n) / 2^n (paper eq. 2, with Q(u, 0) = 0 as in the authors' code).
"""
from __future__ import annotations

import torch

__all__ = [
    "MAX_SUPPORTED_BITS",
    "check_max_bits",
    "quantize",
    "frozen_interval",
    "bit_statistics",
    "bit_map",
]

#: float32 holds 24 significant bits; 2^-32 radii are still representable, so 32 is the cap.
MAX_SUPPORTED_BITS = 32


def check_max_bits(max_bits: int) -> int:
    """Validate the bit width N and return it.

    :param max_bits: total bits N of the quantized parameter (the paper uses 20).
    :raises ValueError: if N is not an integer in 1..32.
    """
    if isinstance(max_bits, bool) or not isinstance(max_bits, int):
        raise ValueError(f"max_bits must be an integer in 1..{MAX_SUPPORTED_BITS}, got {max_bits!r}")
    if not 1 <= max_bits <= MAX_SUPPORTED_BITS:
        raise ValueError(
            f"max_bits must be in 1..{MAX_SUPPORTED_BITS} (the paper uses 20), got {max_bits}"
        )
    return max_bits


def quantize(theta: torch.Tensor, bits: torch.Tensor, bound: float) -> torch.Tensor:
    """Return Q(theta / b, n) * b elementwise: theta rounded to its ``bits`` leading bits.

    Q(u, n) = round(u * 2^n) / 2^n with the code round(u * 2^n) clamped to +-(2^n - 1). A
    parameter with no frozen bit (n = 0) quantizes to 0, as in the authors' code.

    :param theta: parameter values (any float dtype; computed in float32).
    :param bits: frozen-bit count n per element, same shape as ``theta`` (any integer dtype).
    :param bound: quantization range b of the layer (> 0).
    """
    scale = torch.exp2(bits.to(torch.float32))
    u = theta.to(torch.float32) / bound
    # Codes are clamped to +-(2^n - 1), the n-bit range, so that the anchor stays inside the
    # quantization range +-b (1 - 2^-N), as eq. 2 clamps u before rounding.
    code = torch.round(u * scale)
    code = torch.minimum(torch.maximum(code, 1.0 - scale), scale - 1.0)
    q = code / scale
    q = torch.where(bits > 0, q, torch.zeros_like(q))
    return (q * bound).to(theta.dtype)


def frozen_interval(
    anchor: torch.Tensor,
    bits: torch.Tensor,
    bound: float,
    max_bits: int,
    *,
    strict: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Interval ``[lo, hi]`` a parameter may move in while its frozen bits stay (paper eq. 4).

    lo, hi = c -/+ b * 2^-n, intersected with the quantization range +-b (1 - 2^-N). With
    ``strict`` the radius is b * 2^-(n+1), so rounding to nearest can never change Q(theta, n);
    the paper's radius (the default) allows one step of the n-th bit. With n = 0 the radius is b
    in both modes (the whole range). Endpoints are exact up
    to one float32 rounding of c -/+ radius. A parameter with n = N has
    lo = hi = its anchor (up to the range clamp) and never moves.

    :param anchor: c, the quantized value after the last consolidation.
    :param bits: frozen-bit count n per element.
    :param bound: quantization range b of the layer.
    :param max_bits: N; fully frozen parameters (n = N) get a zero radius.
    """
    if strict:
        # Half a step of the n-th bit, less half a step of the N-th, so that no value in the
        # interval is a rounding tie that could flip the n-th bit.
        radius = bound * (torch.exp2(-(bits.to(torch.float32) + 1.0)) - 2.0 ** (-(max_bits + 1)))
    else:
        radius = bound * torch.exp2(-bits.to(torch.float32))
    radius = torch.where(bits >= max_bits, torch.zeros_like(radius), radius)
    # No frozen bit: the whole range, in either mode (strictness is about keeping frozen bits).
    radius = torch.where(bits == 0, torch.full_like(radius, bound), radius)
    limit = bound * (1.0 - 2.0 ** (-max_bits))
    lo = torch.clamp(anchor - radius, min=-limit)
    hi = torch.clamp(anchor + radius, max=limit)
    return lo, hi


def bit_statistics(bits: torch.Tensor, max_bits: int) -> dict[str, float]:
    """Summary of a frozen-bit tensor: mean bits, fraction with any / all bits frozen.

    :returns: ``{"mean_bits", "frac_any", "frac_all"}``; fractions in [0, 1].
    """
    b = bits.to(torch.float32)
    n = max(b.numel(), 1)
    return {
        "mean_bits": float(b.sum()) / n,
        "frac_any": float((bits > 0).sum()) / n,
        "frac_all": float((bits >= max_bits).sum()) / n,
    }


def bit_map(bits: torch.Tensor) -> torch.Tensor:
    """Frozen bits as a 2-D map for heatmaps: rows are output units, columns their inputs.

    Conv weights (C_out, C_in, k_h, k_w) become C_out x (C_in * k_h * k_w), linear weights stay
    (out, in) and biases become one row.
    """
    if bits.dim() == 1:
        return bits.reshape(1, -1)
    return bits.reshape(bits.shape[0], -1)
