"""Shrink and perturb (Ash & Adams, NeurIPS 2020), a plasticity baseline, in two schedules.

``schedule: task`` (the default; Ash & Adams' form): when a new task starts (task 2 on), every
parameter tensor of the trunk is shrunk toward zero and perturbed with noise at the scale of its
initialization:

    theta <- shrink * theta + perturb * sigma_init * xi,   xi ~ N(0, 1)

Applied once per task: a resumed task is not perturbed twice.

``schedule: step`` (soft shrink-and-perturb, as in Plasticine's ``ssp`` and Juliani & Ash 2024):
after every optimizer step,

    theta <- (1 - epsilon) * theta + epsilon * sigma_init * xi

with ``epsilon`` 1e-6 by default (Plasticine's ``sp_coefficient = 0.999999``). The noise is drawn
at each tensor's initial scale rather than from a freshly initialized network (an orthogonal
init of the 6272x1024 layer per step would cost more than the step). The steps applied are
counted in the method's state, so a resumed run goes on where it stopped.

sigma_init is the tensor's standard deviation when the method was first built on the untrained
trunk (kept in its state, so a resumed run perturbs at the same scale; a tensor initialized to
zeros, such as the biases of the paper's trunk, gets no noise). Noise comes from the run's torch
RNG (checkpointed with the run). It protects nothing (it forgets like fine-tuning); it keeps the
network trainable, which is what BLIP's frozen bits cost, so a reader can tell forgetting from
lost plasticity.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .base import ContinualMethod, register

__all__ = ["ShrinkPerturb", "ShrinkPerturbOptions", "SCHEDULES"]

#: When the map is applied: at the start of each task after the first, or after every optimizer step.
SCHEDULES = ("task", "step")


@dataclass
class ShrinkPerturbOptions:
    shrink: float = 0.4  #: lambda (schedule task): the factor every weight is multiplied by
    perturb: float = 0.1  #: the noise (schedule task), in units of each tensor's initial standard deviation
    schedule: str = "task"  #: task (once per task) | step (soft: after every optimizer step)
    epsilon: float = 1e-6  #: the soft form's weight of the noise and of the shrink (schedule step)

    def __post_init__(self) -> None:
        if not (0 <= self.shrink <= 1 and self.perturb >= 0):
            raise ValueError(f"shrink must be in [0, 1] and perturb >= 0, got {self.shrink} and {self.perturb}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)} (task: once per task; step: soft, after "
                             f"every optimizer step), got {self.schedule!r}")
        if not 0 <= self.epsilon <= 1:
            raise ValueError(f"epsilon must be in [0, 1], got {self.epsilon}")


@register
class ShrinkPerturb(ContinualMethod):
    name = "shrink-perturb"
    Options = ShrinkPerturbOptions

    def __init__(self, trunk: nn.Module, *, shrink: float = 0.4, perturb: float = 0.1, schedule: str = "task",
                 epsilon: float = 1e-6) -> None:
        super().__init__(trunk)
        ShrinkPerturbOptions(shrink, perturb, schedule, epsilon)  # checks the values
        self.shrink, self.perturb, self.schedule, self.epsilon = float(shrink), float(perturb), schedule, float(epsilon)
        #: each parameter's standard deviation at initialization (the scale of the noise)
        self.init_std = {n: float(p.detach().float().std()) if p.numel() > 1 else 0.0
                         for n, p in trunk.named_parameters()}
        #: the last task it was applied at the start of (schedule task)
        self.applied = 0
        #: optimizer steps it was applied after (schedule step)
        self.steps = 0

    @torch.no_grad()
    def _apply(self, shrink: float, noise: float) -> None:
        for n, p in self.trunk.named_parameters():
            p.mul_(shrink)
            if noise > 0 and self.init_std[n] > 0:
                p.add_(torch.randn_like(p), alpha=noise * self.init_std[n])  # the run's torch RNG

    def start_task(self, task: int) -> None:
        if self.schedule != "task" or task <= 1 or self.applied >= task:
            return
        self._apply(self.shrink, self.perturb)
        self.applied = task

    def after_step(self) -> None:
        if self.schedule == "step" and self.epsilon > 0:
            self._apply(1.0 - self.epsilon, self.epsilon)
            self.steps += 1

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "applied": self.applied, "steps": self.steps, "init_std": dict(self.init_std)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.applied = int(state["applied"])
        self.steps = int(state.get("steps", 0))
        self.init_std = {k: float(v) for k, v in state["init_std"].items()}
