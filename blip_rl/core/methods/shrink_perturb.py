"""Shrink and perturb (Ash & Adams, NeurIPS 2020), a plasticity baseline.

When a new task starts (task 2 on), every parameter tensor of the trunk is shrunk toward zero
and perturbed with noise at the scale of its initialization:

    theta <- shrink * theta + perturb * sigma_init * eps,   eps ~ N(0, 1)

where sigma_init is the tensor's standard deviation when the method was first built on the
untrained trunk (kept in its state, so a resumed run perturbs at the same scale; a tensor
initialized to zeros, such as the biases of the paper's trunk, gets no noise). It protects
nothing (it forgets like fine-tuning); it keeps the network trainable, which is what BLIP's
frozen bits cost, so a reader can tell forgetting from lost plasticity. Applied once per task:
a resumed task is not perturbed twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .base import ContinualMethod, register

__all__ = ["ShrinkPerturb", "ShrinkPerturbOptions"]


@dataclass
class ShrinkPerturbOptions:
    shrink: float = 0.4  #: lambda, the factor every weight is multiplied by
    perturb: float = 0.1  #: the noise, in units of each tensor's initial standard deviation

    def __post_init__(self) -> None:
        if not (0 <= self.shrink <= 1 and self.perturb >= 0):
            raise ValueError(f"shrink must be in [0, 1] and perturb >= 0, got {self.shrink} and {self.perturb}")


@register
class ShrinkPerturb(ContinualMethod):
    name = "shrink-perturb"
    Options = ShrinkPerturbOptions

    def __init__(self, trunk: nn.Module, *, shrink: float = 0.4, perturb: float = 0.1) -> None:
        super().__init__(trunk)
        ShrinkPerturbOptions(shrink, perturb)  # checks the values
        self.shrink, self.perturb = float(shrink), float(perturb)
        #: each parameter's standard deviation at initialization (the scale of the noise)
        self.init_std = {n: float(p.detach().float().std()) if p.numel() > 1 else 0.0
                         for n, p in trunk.named_parameters()}
        #: the last task it was applied at the start of
        self.applied = 0

    @torch.no_grad()
    def start_task(self, task: int) -> None:
        if task <= 1 or self.applied >= task:
            return
        for n, p in self.trunk.named_parameters():
            p.mul_(self.shrink)
            if self.perturb > 0 and self.init_std[n] > 0:
                p.add_(torch.randn_like(p), alpha=self.perturb * self.init_std[n])  # the run's torch RNG
        self.applied = task

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "applied": self.applied, "init_std": dict(self.init_std)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.applied = int(state["applied"])
        self.init_std = {k: float(v) for k, v in state["init_std"].items()}
