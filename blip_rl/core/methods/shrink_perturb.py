"""Shrink and perturb (Ash & Adams, NeurIPS 2020), a plasticity baseline.

When a new task starts (task 2 on), every weight of the trunk is shrunk toward zero and a fresh
initialization is added:

    theta <- shrink * theta + perturb * theta_init,   theta_init ~ the layer's own initializer

It protects nothing (it forgets like fine-tuning); it keeps the network trainable, which is
what BLIP's frozen bits cost. It is here so that a reader can tell forgetting from lost
plasticity. Applied once per task: a resumed task is not perturbed twice.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .base import ContinualMethod, register

__all__ = ["ShrinkPerturb", "ShrinkPerturbOptions"]


@dataclass
class ShrinkPerturbOptions:
    shrink: float = 0.4  #: lambda, the factor every weight is multiplied by
    perturb: float = 0.1  #: the scale of the fresh initialization added


@register
class ShrinkPerturb(ContinualMethod):
    name = "shrink-perturb"
    Options = ShrinkPerturbOptions

    def __init__(self, trunk: nn.Module, *, shrink: float = 0.4, perturb: float = 0.1) -> None:
        super().__init__(trunk)
        if not (0 <= shrink <= 1 and perturb >= 0):
            raise ValueError(f"shrink must be in [0, 1] and perturb >= 0, got {shrink} and {perturb}")
        self.shrink, self.perturb = float(shrink), float(perturb)
        #: the last task it was applied at the start of
        self.applied = 0

    @torch.no_grad()
    def start_task(self, task: int) -> None:
        if task <= 1 or self.applied >= task:
            return
        for module in self.trunk.modules():
            own = dict(module.named_parameters(recurse=False))
            if not own or not hasattr(module, "reset_parameters"):
                continue
            fresh = copy.deepcopy(module)
            fresh.reset_parameters()  # the layer's own initializer, from the run's torch RNG
            for name, p in own.items():
                p.mul_(self.shrink).add_(getattr(fresh, name).detach(), alpha=self.perturb)
        self.applied = task

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "applied": self.applied}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.applied = int(state["applied"])
