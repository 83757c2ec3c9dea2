"""Exact per-sample diagonal Fisher information of linear and conv layers (paper eq. 6).

F = mean_x E_{y ~ p(.|x)} (d log p(y|x) / d theta)^2 with y SAMPLED from the model's own
prediction. The per-sample gradient of a layer needs no per-sample backward pass: with the layer
input a_i and the gradient g_i of log p(y_i|x_i) at the layer output, it is g_i a_i^T (linear) or
g_i unfold(a_i)^T (conv). One backward pass of sum_i log p(y_i|x_i) gives every g_i, because the
samples of a batch do not interact (no batch norm in train mode). This is ~30x faster than
``torch.func.vmap`` on the paper's RL network on a 2-core CPU.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FisherData", "fisher_diagonal", "supported_layers"]


@dataclass
class FisherData:
    """What a learner hands a continual method at the end of a task for its Fisher.

    :param inputs: M inputs of the task (e.g. states from the policy's own rollouts), batch-first.
    :param logits_fn: maps a batch of inputs to the logits of p_theta(y|x) (the current task's head).
    :param batch_size: inputs per backward pass (bounds the memory of the unfolded conv inputs).
    :param generator: RNG for sampling y, for reproducible Fisher estimates.
    """

    inputs: torch.Tensor
    logits_fn: Callable[[torch.Tensor], torch.Tensor]
    batch_size: int = 256
    generator: torch.Generator | None = field(default=None, repr=False)


def supported_layers(module: nn.Module) -> dict[str, nn.Module]:
    """Every ``nn.Linear`` and ``nn.Conv2d`` (BLIP layers included) inside ``module``, by name."""
    return {n: m for n, m in module.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}


def _conv_padding(m: nn.Conv2d) -> tuple[int, int]:
    if isinstance(m.padding, str):
        if m.padding == "valid":
            return (0, 0)
        k = m.kernel_size
        if any(ki % 2 == 0 for ki in k):
            raise ValueError("padding='same' with an even kernel is not supported by the exact Fisher")
        return tuple(d * (ki - 1) // 2 for d, ki in zip(m.dilation, k))  # type: ignore[return-value]
    return m.padding  # type: ignore[return-value]


def _accumulate(m: nn.Module, a: torch.Tensor, g: torch.Tensor, out: dict[str, torch.Tensor]) -> None:
    """Add sum_i (per-sample gradient_i)^2 of ``m``'s weight and bias to ``out``."""
    a = a.to(torch.float32)
    g = g.to(torch.float32)
    if isinstance(m, nn.Conv2d):
        if m.groups != 1 or m.padding_mode != "zeros":
            raise ValueError(f"exact Fisher needs groups=1 and zero padding, got {m}")
        # unfold (im2col) is several times slower on channels-last inputs: use the plain layout.
        a = a.contiguous()
        cols = F.unfold(a, m.kernel_size, dilation=m.dilation, padding=_conv_padding(m), stride=m.stride)
        g = g.contiguous().flatten(2)  # (B, C_out, L)
        per_sample = torch.bmm(g, cols.transpose(1, 2))  # (B, C_out, C_in*k*k)
        out["weight"] += per_sample.square_().sum(0).view_as(m.weight)
        if m.bias is not None:
            out["bias"] += g.sum(2).square_().sum(0)
    elif a.dim() == 2:
        # Linear on (B, in): sum_i (g_i a_i^T)^2 = (g^2)^T (a^2).
        out["weight"] += g.square().t() @ a.square()
        if m.bias is not None:
            out["bias"] += g.square().sum(0)
    else:
        # Linear applied over extra dims (B, ..., in): the per-sample gradient sums over them.
        a = a.flatten(1, -2)
        g = g.flatten(1, -2)
        per_sample = torch.bmm(g.transpose(1, 2), a)
        out["weight"] += per_sample.square_().sum(0)
        if m.bias is not None:
            out["bias"] += g.sum(1).square_().sum(0)


def fisher_diagonal(
    layers: Mapping[str, nn.Module],
    data: FisherData,
) -> dict[str, dict[str, torch.Tensor]]:
    """Exact diagonal Fisher of every layer in ``layers`` over ``data.inputs``.

    :param layers: ``nn.Linear`` / ``nn.Conv2d`` modules by name (see :func:`supported_layers`);
        each must run exactly once per forward pass of ``data.logits_fn``.
    :param data: inputs, logits function, batch size and RNG.
    :returns: ``{layer_name: {"weight": F_w, "bias": F_b}}``, float32, averaged over the inputs.
        Layers that do not influence the logits get zeros.
    :raises ValueError: with no inputs, or for a layer type the formula does not cover.
    """
    inputs = data.inputs
    if inputs is None or len(inputs) == 0:
        raise ValueError("Fisher needs at least one input of the task just learned (got none)")
    if data.batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {data.batch_size}")
    for name, m in layers.items():
        if not isinstance(m, (nn.Linear, nn.Conv2d)):
            raise ValueError(f"layer {name!r} is a {type(m).__name__}; exact Fisher covers Linear and Conv2d")
    totals = {
        name: {p: torch.zeros_like(getattr(m, p), dtype=torch.float32) for p in ("weight", "bias")
               if getattr(m, p) is not None}
        for name, m in layers.items()
    }
    captured: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def hook(name):
        def fn(_m, args, output):
            captured.setdefault(name, []).append((args[0].detach(), output))
        return fn

    handles = [m.register_forward_hook(hook(name)) for name, m in layers.items()]
    device_type = inputs.device.type
    try:
        with torch.enable_grad(), torch.autocast(device_type=device_type, enabled=False):
            for chunk in inputs.split(data.batch_size):
                captured.clear()
                log_p = torch.log_softmax(data.logits_fn(chunk).float(), dim=-1)
                y = torch.multinomial(log_p.detach().exp(), 1, generator=data.generator)
                objective = log_p.gather(1, y).sum()
                names = [n for n in layers if n in captured]
                for n in names:
                    if len(captured[n]) != 1:
                        raise ValueError(f"layer {n!r} ran {len(captured[n])} times in one forward pass; "
                                         "the exact Fisher needs each layer once")
                outs = [captured[n][0][1] for n in names]
                grads = torch.autograd.grad(objective, outs, allow_unused=True) if outs else []
                for n, g in zip(names, grads):
                    if g is not None:
                        _accumulate(layers[n], captured[n][0][0], g, totals[n])
    finally:
        for h in handles:
            h.remove()
        captured.clear()
    count = float(len(inputs))
    for per_param in totals.values():
        for t in per_param.values():
            t.div_(count)
    return totals
