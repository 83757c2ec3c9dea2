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

#: float32 parameters hold 24 significant bits: with N > 24 the N-bit grid near |theta| ~ b is
#: finer than float32's spacing, anchors fall off the grid and a frozen bit could flip. Up to 24
#: the strict interval keeps every frozen bit (tests/core/test_bits.py checks it at 24).
MAX_SUPPORTED_BITS = 24


def check_max_bits(max_bits: int) -> int:
    """Validate the bit width N and return it.

    :param max_bits: total bits N of the quantized parameter (the paper uses 20).
    :raises ValueError: if N is not an integer in 1..24 (:data:`MAX_SUPPORTED_BITS`).
    """
    if isinstance(max_bits, bool) or not isinstance(max_bits, int):
        raise ValueError(f"max_bits must be an integer in 1..{MAX_SUPPORTED_BITS}, got {max_bits!r}")
    if not 1 <= max_bits <= MAX_SUPPORTED_BITS:
        raise ValueError(
            f"max_bits must be in 1..{MAX_SUPPORTED_BITS} (float32 weights hold {MAX_SUPPORTED_BITS} significant "
            f"bits; the paper uses 20), got {max_bits}"
        )
    return max_bits


def quantize(theta: torch.Tensor, bits: torch.Tensor, bound: float) -> torch.Tensor:
    """Return Q(theta / b, n) * b elementwise: theta rounded to its ``bits`` leading bits.

    Q(u, n) = round(u * 2^n) / 2^n with the code round(u * 2^n) clamped to +-(2^n - 1). A
    parameter with no frozen bit (n = 0) quantizes to 0, as in the authors' code.

    :param theta: parameter values (any float dtype; computed in float64 and
        rounded once to its dtype, so that the n-th bit is read exactly for every N up to 24).
    :param bits: frozen-bit count n per element, same shape as ``theta`` (any integer dtype).
    :param bound: quantization range b of the layer (> 0).
    """
    scale = torch.exp2(bits.to(torch.float64))
    u = theta.to(torch.float64) / bound
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
    in both modes (the whole range). Endpoints are computed in float64 and rounded inward to
    the anchor's dtype, so ``[lo, hi]`` never reaches past the exact interval. A parameter with n = N has
    lo = hi = its anchor (up to the range clamp) and never moves.

    :param anchor: c, the quantized value after the last consolidation.
    :param bits: frozen-bit count n per element.
    :param bound: quantization range b of the layer.
    :param max_bits: N; fully frozen parameters (n = N) get a zero radius.
    """
    # In float64, then rounded inward to the anchor's dtype: float32 cannot hold c -/+ radius
    # exactly near N >= 23 bits, and rounding an endpoint outward can land it on a rounding tie
    # of the n-th bit (issue 12). Rounding inward keeps [lo, hi] inside the exact interval.
    n = bits.to(torch.float64)
    if strict:
        # Half a step of the n-th bit, less half a step of the N-th, so that no value in the
        # interval is a rounding tie that could flip the n-th bit.
        radius = bound * (torch.exp2(-(n + 1.0)) - 2.0 ** (-(max_bits + 1)))
    else:
        radius = bound * torch.exp2(-n)
    radius = torch.where(bits >= max_bits, torch.zeros_like(radius), radius)
    # No frozen bit: the whole range, in either mode (strictness is about keeping frozen bits).
    radius = torch.where(bits == 0, torch.full_like(radius, bound), radius)
    limit = bound * (1.0 - 2.0 ** (-max_bits))
    c = anchor.to(torch.float64)
    lo = _round_inward(torch.clamp(c - radius, min=-limit), anchor.dtype, up=True)
    hi = _round_inward(torch.clamp(c + radius, max=limit), anchor.dtype, up=False)
    return lo, hi


def _round_inward(x: torch.Tensor, dtype: torch.dtype, *, up: bool) -> torch.Tensor:
    """``x`` (float64) in ``dtype``, rounded up (``up``) or down instead of to nearest."""
    y = x.to(dtype)
    wrong = (y.to(torch.float64) < x) if up else (y.to(torch.float64) > x)
    toward = torch.full_like(y, float("inf") if up else float("-inf"))
    return torch.where(wrong, torch.nextafter(y, toward), y)


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
