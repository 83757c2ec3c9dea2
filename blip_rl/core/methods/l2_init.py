"""L2 Init, regenerative regularization (Kumar, Marklund & Van Roy 2023, "Maintaining
Plasticity in Continual Learning via Regenerative Regularization"), a plasticity baseline.

    penalty = strength * ||theta - theta_0||^2

where theta_0 are the trunk's weights when the method was built on the untrained trunk (its
initialization; kept in the method's state, so a resumed run pulls toward the same point). The
pull is to the *initial* weights, not to the last task's (that is :mod:`.l2`): it keeps the
network near a trainable point and protects nothing, so it forgets like fine-tuning and is the
reference for plasticity. The penalty is exactly zero at initialization.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .base import ContinualMethod, register

__all__ = ["L2Init", "L2InitOptions"]


@dataclass
class L2InitOptions:
    #: lambda. Kumar et al. choose it per benchmark from {1e-2, 1e-3, 1e-4, 1e-5}; 1e-3 is their
    #: grid's middle (tune per benchmark: the PPO loss and the trunk's size set its scale)
    strength: float = 1e-3

    def __post_init__(self) -> None:
        if not self.strength >= 0:
            raise ValueError(f"strength (lambda) must be >= 0, got {self.strength}")


@register
class L2Init(ContinualMethod):
    name = "l2-init"
    Options = L2InitOptions

    def __init__(self, trunk: nn.Module, *, strength: float = 1e-3) -> None:
        super().__init__(trunk)
        L2InitOptions(strength)  # checks the value
        self.strength = float(strength)
        #: theta_0, the trunk's parameters at initialization
        self.initial = {n: p.detach().clone() for n, p in trunk.named_parameters()}

    def penalty(self) -> torch.Tensor | None:
        if self.strength == 0:
            return None
        total = sum((p - self.initial[n]).square().sum() for n, p in self.trunk.named_parameters())
        return self.strength * total

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "initial": dict(self.initial)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        params = dict(self.trunk.named_parameters())
        self.initial = {k: v.to(params[k].device) for k, v in state["initial"].items()}
