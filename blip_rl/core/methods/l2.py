"""L2: a quadratic penalty to the weights at the end of the previous task, every weight alike
(the "L2" baseline of Continual World; importance 1 for every weight)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..fisher import FisherData
from .base import register
from .quadratic import AnchoredPenalty, check_strength

__all__ = ["L2", "L2Options"]


@dataclass
class L2Options:
    #: weight of the penalty strength/2 * ||theta - theta*||^2; tune per benchmark (the PPO loss
    #: and the trunk's size set its scale)
    strength: float = 1.0

    def __post_init__(self) -> None:
        check_strength(self.strength)


@register
class L2(AnchoredPenalty):
    name = "l2"
    Options = L2Options

    def __init__(self, trunk: nn.Module, *, strength: float = 1.0) -> None:
        super().__init__(trunk, strength=strength)

    def task_importance(self, task: int, data: FisherData | None) -> dict[str, torch.Tensor]:
        # Importance 1 once, whatever the number of tasks: the penalty is to the latest anchor.
        return {n: torch.ones_like(p) if n not in self.importance else torch.zeros_like(p)
                for n, p in self.params().items()}
