"""Fine-tuning baselines: ``ft`` (no protection, the forgetting baseline) and ``ft-fix`` (the
trunk trained on the first task only)."""
from __future__ import annotations

from typing import Any

from ..fisher import FisherData
from .base import ContinualMethod, register

__all__ = ["FineTune", "FineTuneFixed"]


@register
class FineTune(ContinualMethod):
    """Sequential fine-tuning (FT): no protection at all; the forgetting baseline."""

    name = "ft"


@register
class FineTuneFixed(ContinualMethod):
    """FT-FIX: the trunk is trained on the first task only, then frozen; heads keep learning."""

    name = "ft-fix"

    def start_task(self, task: int) -> None:
        self._apply()

    def end_task(self, task: int, data: FisherData | None = None) -> dict[str, float]:
        self.tasks_done = task
        self._apply()
        return {}

    def _apply(self) -> None:
        frozen = self.tasks_done >= 1
        for p in self.trunk.parameters():
            p.requires_grad_(not frozen)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._apply()
