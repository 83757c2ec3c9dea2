"""Plasticity diagnostics of a network: pure functions of activations, features and parameters.

The standard loss-of-plasticity measures, so that "can it still learn" is a number beside
"did it keep what it learned":

* :func:`unit_scores` / :func:`dormant_ratio`: ReDo's score of each unit (Sokar et al., ICML
  2023, eq. 1): its mean absolute activation over the batch (and over positions, for a conv
  channel) divided by the mean of that over the layer's units; a unit scoring at most ``tau`` is
  dormant (``tau = 0``: exactly dead units).
* :func:`effective_rank`: Kumar et al.'s srank (ICLR 2021): the number of singular values of the
  feature matrix needed to reach a ``1 - delta`` share of their sum (``delta = 0.01``).
* :func:`weight_magnitude`: mean absolute weight of a layer.
* :func:`capacity_left`: of a BLIP layer, the mean number of bits per weight not frozen yet, as a
  share of N, and the share of weights with every bit frozen (nothing left to learn in them).
* :func:`layer_activations`: each conv/linear layer's post-ReLU output for one forward pass (the
  input of the functions above).

Torch only, like the rest of the core.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .quant import BlipLayer

__all__ = ["unit_scores", "dormant_ratio", "effective_rank", "weight_magnitude", "capacity_left", "layer_activations",
           "unit_layers", "SRANK_DELTA"]

#: Kumar et al. (2021)'s delta for the effective rank.
SRANK_DELTA = 0.01


def unit_scores(activations: torch.Tensor) -> torch.Tensor:
    """ReDo's normalized score of each unit (dim 1) of a ``(batch, units, ...)`` activation.

    A layer whose every activation is 0 scores 0 everywhere (all units dormant).
    """
    if activations.dim() < 2:
        raise ValueError(f"activations need a batch and a unit dimension, got shape {tuple(activations.shape)}")
    a = activations.detach().float().abs()
    per_unit = a.transpose(0, 1).reshape(a.shape[1], -1).mean(1)  # over the batch and positions
    mean = per_unit.mean()
    return per_unit / mean if mean > 0 else torch.zeros_like(per_unit)


def dormant_ratio(activations: torch.Tensor, tau: float = 0.0) -> float:
    """Share of the units of ``activations`` whose :func:`unit_scores` is at most ``tau``."""
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau}")
    return float((unit_scores(activations) <= tau).float().mean())


def effective_rank(features: torch.Tensor, delta: float = SRANK_DELTA) -> int:
    """srank_delta of a ``(samples, features)`` matrix (Kumar et al. 2021): the smallest k with
    ``sum_{i<=k} sigma_i >= (1 - delta) * sum_i sigma_i`` (0 for an all-zero matrix)."""
    if not 0 <= delta < 1:
        raise ValueError(f"delta must be in [0, 1), got {delta}")
    x = features.detach().double().reshape(features.shape[0], -1)
    sigma = torch.linalg.svdvals(x)
    total = float(sigma.sum())
    if total <= 0:
        return 0
    share = torch.cumsum(sigma, 0) / total
    return int((share < 1 - delta - 1e-12).sum()) + 1


def weight_magnitude(layer: nn.Module) -> float:
    """Mean absolute value of ``layer.weight``."""
    return float(layer.weight.detach().abs().float().mean())


def capacity_left(layer: BlipLayer) -> tuple[float, float]:
    """``(free, full)`` of a BLIP layer's weights: the mean of ``(N - n) / N`` over the weights
    (1 before any consolidation, 0 with every bit of every weight frozen) and the share of weights
    whose N bits are all frozen."""
    bits = layer.frozen_bits("weight").float()
    n = float(layer.max_bits)
    return float((n - bits).mean() / n), float((bits >= n).float().mean())


def unit_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The conv and linear layers of ``module`` in forward order: the layers whose units are
    scored (each followed by a ReLU in the trunks here, after a LayerNorm where there is one)."""
    return [(name, m) for name, m in module.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def _activation_of(module: nn.Module) -> dict[str, nn.Module]:
    """Each unit layer's name -> the ``nn.ReLU`` that follows it in module order (before the
    next unit layer), where there is one: its output is the layer's activation."""
    out: dict[str, nn.Module] = {}
    last = None
    for name, m in module.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            last = name
        elif isinstance(m, nn.ReLU) and last is not None and last not in out:
            out[last] = m
    return out


@torch.no_grad()
def layer_activations(module: nn.Module, forward: Callable[[], Any]) -> dict[str, torch.Tensor]:
    """Each unit layer's (:func:`unit_layers`) activation while ``forward()`` runs (a forward
    pass through ``module``): the output of the ``nn.ReLU`` after it (so after a LayerNorm in
    between), or the ReLU of its output where no ``nn.ReLU`` module follows. The last call of
    each layer is kept."""
    out: dict[str, torch.Tensor] = {}
    relus = _activation_of(module)

    def hook(name: str, apply_relu: bool) -> Callable[..., None]:
        def record(_m: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            out[name] = torch.relu(output.detach()) if apply_relu else output.detach()
        return record

    handles = [(relus[name] if name in relus else m).register_forward_hook(hook(name, name not in relus))
               for name, m in unit_layers(module)]
    try:
        forward()
    finally:
        for h in handles:
            h.remove()
    return out
