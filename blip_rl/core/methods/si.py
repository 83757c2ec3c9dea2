"""SI, Synaptic Intelligence (Zenke et al., ICML 2017).

Along the training path of a task, each weight's contribution to the loss decrease is the path
integral omega = -sum_steps g * delta_theta, accumulated between ``backward()`` (g, in
:meth:`SI.before_step`) and the optimizer step (delta_theta, in :meth:`SI.after_step`). At the
task's end the importance grows by omega / (total change^2 + damping); the penalty is
strength/2 * sum importance * (theta - theta*)^2. A weight that never moved has omega = 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..fisher import FisherData
from .base import register
from .quadratic import AnchoredPenalty, check_strength

__all__ = ["SI", "SIOptions"]


@dataclass
class SIOptions:
    strength: float = 0.1  #: weight of the penalty (c in the paper; 0.1 as its split MNIST)
    damping: float = 1e-3  #: xi, keeps omega / delta^2 finite for weights that barely moved

    def __post_init__(self) -> None:
        check_strength(self.strength)
        if not self.damping > 0:
            raise ValueError(f"damping must be > 0, got {self.damping}")


@register
class SI(AnchoredPenalty):
    name = "si"
    Options = SIOptions

    def __init__(self, trunk: nn.Module, *, strength: float = 0.1, damping: float = 1e-3) -> None:
        super().__init__(trunk, strength=strength)
        SIOptions(strength, damping)  # checks the values
        self.damping = float(damping)
        params = self.params()
        self.omega = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
        self.start = {n: p.detach().clone() for n, p in params.items()}  # the weights at the task's start
        self._grad: dict[str, torch.Tensor] = {}
        self._before: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def before_step(self) -> None:
        for n, p in self.params().items():
            if p.grad is not None:
                self._grad[n] = p.grad.detach().clone()
                self._before[n] = p.detach().clone()

    @torch.no_grad()
    def after_step(self) -> None:
        for n, p in self.params().items():
            if n in self._grad:
                self.omega[n] -= self._grad[n] * (p.detach() - self._before[n])
        self._grad.clear()
        self._before.clear()

    def task_importance(self, task: int, data: FisherData | None) -> dict[str, torch.Tensor]:
        params = self.params()
        out = {n: self.omega[n].clamp(min=0) / ((p.detach() - self.start[n]).square() + self.damping)
               for n, p in params.items()}
        self.omega = {n: torch.zeros_like(o) for n, o in self.omega.items()}
        self.start = {n: p.detach().clone() for n, p in params.items()}
        return out

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "omega": dict(self.omega), "start": dict(self.start)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        params = self.params()
        self.omega = {k: v.to(params[k].device) for k, v in state["omega"].items()}
        self.start = {k: v.to(params[k].device) for k, v in state["start"].items()}
