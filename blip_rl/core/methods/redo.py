"""ReDo, recycling dormant neurons (Sokar, Agarwal, Castro & Evci, ICML 2023), a plasticity baseline.

Every ``interval`` updates, each unit of the trunk's conv and linear layers is scored on the
update's last training batch (its mean absolute post-ReLU activation over the batch and, for a
conv channel, over positions, divided by the layer's mean of that: :func:`..plasticity.unit_scores`).
A unit scoring at most ``tau`` is dormant and is recycled:

* its incoming weights and bias get fresh values from the layer's own initialization (BLIP
  layers: orthogonal with ReLU gain, clamped into the quantization range, bias 0; plain layers:
  PyTorch's default);
* its outgoing weights in the next layer of the trunk are set to zero (for a conv channel
  feeding the fully connected layer, the columns of that channel's positions), so the network's
  output does not change at the moment of recycling;
* the optimizer's moments (Adam's ``exp_avg``, ``exp_avg_sq``) of every weight changed are reset.

A unit that is not dormant is not touched. The trunk's last layer feeds the task heads, which
belong to the learner, not to the trunk: its recycled units get fresh incoming weights, and
their outgoing weights in the heads are left as they are (documented, as in implementations
that recycle the encoder only). It protects nothing: a plasticity baseline beside
shrink-and-perturb and L2 Init.

Defaults: ``tau = 0.025`` (Sokar et al.'s threshold for their Atari agents; Plasticine's PPO
ReDo uses the same), ``interval = 10`` updates (Plasticine's continual PPO, ``redo_frequency``;
one update is one PPO rollout's epochs of minibatch steps, or one classification epoch).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..plasticity import layer_activations, unit_layers, unit_scores
from ..quant import BlipLayer
from .base import ContinualMethod, register

__all__ = ["ReDo", "ReDoOptions", "recycle_units"]


@dataclass
class ReDoOptions:
    tau: float = 0.025  #: dormancy threshold on the normalized score (0: exactly dead units only)
    interval: int = 10  #: updates between two recyclings
    batch: int = 256  #: training inputs scored (the first of the update's last batch)

    def __post_init__(self) -> None:
        if not self.tau >= 0:
            raise ValueError(f"tau must be >= 0 (0 recycles dead units only; the default is 0.025), got {self.tau}")
        if isinstance(self.interval, bool) or not isinstance(self.interval, int) or self.interval < 1:
            raise ValueError(f"interval must be a whole number of updates >= 1, got {self.interval!r}")
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1:
            raise ValueError(f"batch must be a whole number of inputs >= 1, got {self.batch!r}")


def _fresh(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """New weight and bias values as ``layer``'s initialization draws them (the run's torch RNG)."""
    weight = torch.empty_like(layer.weight)
    bias = torch.zeros_like(layer.bias) if layer.bias is not None else None
    if isinstance(layer, BlipLayer):
        nn.init.orthogonal_(weight, gain=nn.init.calculate_gain("relu"))
        limit = layer.bound("weight") * (1.0 - 2.0 ** (-layer.max_bits))
        weight.clamp_(-limit, limit)
    else:  # nn.Linear / nn.Conv2d reset_parameters()
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
        if bias is not None:
            fan_in = weight[0].numel()
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            nn.init.uniform_(bias, -bound, bound)
    return weight, bias


def _outgoing(layer: nn.Module, nxt: nn.Module, mask: torch.Tensor) -> torch.Tensor | None:
    """The entries of ``nxt.weight`` fed by the units ``mask`` of ``layer`` (a boolean mask of
    ``nxt.weight``'s shape), or None where the shapes do not say which they are."""
    units = mask.numel()
    w = nxt.weight
    if w.dim() == 4 and w.shape[1] == units:  # conv -> conv
        return mask.view(1, units, 1, 1).expand_as(w)
    if w.dim() == 2 and w.shape[1] == units:  # linear -> linear
        return mask.view(1, units).expand_as(w)
    if w.dim() == 2 and isinstance(layer, nn.Conv2d) and w.shape[1] % units == 0:  # conv -> flatten -> linear
        per = w.shape[1] // units
        return mask.view(units, 1).expand(units, per).reshape(1, -1).expand_as(w)
    return None


@torch.no_grad()
def recycle_units(trunk: nn.Module, inputs: torch.Tensor, tau: float,
                  optimizer: torch.optim.Optimizer | None = None) -> dict[str, int]:
    """Recycle the dormant units of ``trunk`` scored on ``inputs`` (see the module's text);
    returns the number recycled per layer."""
    layers = unit_layers(trunk)
    acts = layer_activations(trunk, lambda: trunk(inputs))
    done: dict[str, int] = {}
    for i, (name, layer) in enumerate(layers):
        if name not in acts:
            continue
        dormant = unit_scores(acts[name]) <= tau
        done[name] = int(dormant.sum())
        if not dormant.any():
            continue
        weight, bias = _fresh(layer)
        changed = [(layer.weight, dormant.view(-1, *[1] * (layer.weight.dim() - 1)).expand_as(layer.weight))]
        layer.weight[changed[0][1]] = weight[changed[0][1]]
        if bias is not None:
            layer.bias[dormant] = bias[dormant]
            changed.append((layer.bias, dormant))
        if i + 1 < len(layers):
            nxt = layers[i + 1][1]
            out = _outgoing(layer, nxt, dormant)
            if out is not None:
                nxt.weight[out] = 0.0
                changed.append((nxt.weight, out))
        if optimizer is not None:
            for p, where in changed:
                for value in optimizer.state.get(p, {}).values():
                    if torch.is_tensor(value) and value.shape == p.shape:
                        value[where] = 0.0
    return done


@register
class ReDo(ContinualMethod):
    name = "redo"
    Options = ReDoOptions

    def __init__(self, trunk: nn.Module, *, tau: float = 0.025, interval: int = 10, batch: int = 256) -> None:
        super().__init__(trunk)
        ReDoOptions(tau, interval, batch)  # checks the values
        self.tau, self.interval, self.batch = float(tau), int(interval), int(batch)
        self.updates = 0  #: updates seen (counts toward the interval; survives resume)
        self.recycled = 0  #: units recycled so far
        self._inputs: torch.Tensor | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        trunk.register_forward_pre_hook(self._keep_inputs)

    def _keep_inputs(self, _module: nn.Module, args: tuple[Any, ...]) -> None:
        if torch.is_grad_enabled() and args and torch.is_tensor(args[0]):  # a training forward
            self._inputs = args[0][: self.batch].detach()

    def attach_optimizer(self, optimizer: torch.optim.Optimizer):
        self._optimizer = optimizer
        return super().attach_optimizer(optimizer)

    def after_update(self) -> None:
        self.updates += 1
        if self.updates % self.interval == 0 and self._inputs is not None:
            was = self.trunk.training
            self.trunk.eval()
            try:
                self.recycled += sum(recycle_units(self.trunk, self._inputs, self.tau, self._optimizer).values())
            finally:
                self.trunk.train(was)

    def end_task(self, task: int, data=None) -> dict[str, float]:
        super().end_task(task, data)
        return {"recycled_units": float(self.recycled)}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "updates": self.updates, "recycled": self.recycled}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.updates = int(state.get("updates", 0))
        self.recycled = int(state.get("recycled", 0))
