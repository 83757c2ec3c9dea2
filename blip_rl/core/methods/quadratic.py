"""What L2, MAS and SI share: a quadratic penalty pulling the trunk toward its weights at the end
of the previous task, each weight by its own importance.

    penalty = strength / 2 * sum_i importance_i * (theta_i - anchor_i)^2

A method built on :class:`AnchoredPenalty` says only how a task adds to the importance
(:meth:`AnchoredPenalty.task_importance`); anchors, the penalty and the checkpoint state are here.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..fisher import FisherData
from .base import ContinualMethod

__all__ = ["AnchoredPenalty"]


def check_strength(strength: float) -> None:
    """:raises ValueError: a penalty weight below 0 (or NaN)."""
    if not strength >= 0:
        raise ValueError(f"strength must be >= 0, got {strength}")


class AnchoredPenalty(ContinualMethod):
    """Quadratic penalty to the anchor weights, weighted by an importance accumulated over tasks.

    :param strength: the penalty's weight (>= 0).
    """

    def __init__(self, trunk: nn.Module, *, strength: float) -> None:
        super().__init__(trunk)
        check_strength(strength)
        self.strength = float(strength)
        self.importance: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}

    def params(self) -> dict[str, nn.Parameter]:
        """The trunk's parameters the penalty covers, by name."""
        return dict(self.trunk.named_parameters())

    def penalty(self) -> torch.Tensor | None:
        if not self.anchor or self.strength == 0:
            return None
        total = None
        for name, p in self.params().items():
            term = (self.importance[name] * (p - self.anchor[name]).square()).sum()
            total = term if total is None else total + term
        return 0.5 * self.strength * total

    def task_importance(self, task: int, data: FisherData | None) -> dict[str, torch.Tensor]:
        """How much each weight mattered for the task just learned (added to the importance)."""
        raise NotImplementedError

    @torch.no_grad()
    def end_task(self, task: int, data: FisherData | None = None) -> dict[str, float]:
        new = self.task_importance(task, data)
        for name, p in self.params().items():
            add = new[name].detach().to(p.device, torch.float32)
            self.importance[name] = add if name not in self.importance else self.importance[name] + add
            self.anchor[name] = p.detach().clone()
        self.tasks_done = task
        return {"importance_mean": float(torch.stack([v.mean() for v in self.importance.values()]).mean())}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "importance": dict(self.importance), "anchor": dict(self.anchor)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        params = self.params()
        self.importance = {k: v.to(params[k].device) for k, v in state["importance"].items()}
        self.anchor = {k: v.to(params[k].device) for k, v in state["anchor"].items()}
