"""Online EWC (Schwarz et al. 2018) on the same exact Fisher as BLIP."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..fisher import FisherData, fisher_diagonal, supported_layers
from .base import ContinualMethod, register

__all__ = ["OnlineEWC", "EWCOptions"]


@dataclass
class EWCOptions:
    ewc_lambda: float = 5000.0  #: strength lambda of the penalty (>= 0)
    gamma: float = 1.0  #: decay of the accumulated Fisher in (0, 1]; 1 sums it (the BLIP authors' code)

    def __post_init__(self) -> None:
        if not self.ewc_lambda >= 0:
            raise ValueError(f"ewc_lambda must be >= 0, got {self.ewc_lambda}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")


@register
class OnlineEWC(ContinualMethod):
    """Online EWC (Schwarz et al. 2018): penalty lambda/2 * sum F (theta - theta*)^2.

    After each task F <- gamma * F + F_t and theta* <- theta, over the trunk's linear and conv
    layers, with F_t from the same exact Fisher code as BLIP.

    :param ewc_lambda: strength lambda of the penalty (>= 0).
    :param gamma: decay of the accumulated Fisher in (0, 1].
    """

    name = "ewc"
    needs_fisher = True
    Options = EWCOptions

    def __init__(self, trunk: nn.Module, *, ewc_lambda: float = 5000.0, gamma: float = 1.0) -> None:
        super().__init__(trunk)
        EWCOptions(ewc_lambda, gamma)  # checks the values
        self.ewc_lambda = float(ewc_lambda)
        self.gamma = float(gamma)
        self.layers = supported_layers(trunk)
        if not self.layers:
            raise ValueError("EWC found no nn.Linear/nn.Conv2d layer in the trunk")
        self.fisher: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}

    def _params(self) -> dict[str, nn.Parameter]:
        return {f"{ln}.{pn}": getattr(m, pn) for ln, m in self.layers.items()
                for pn in ("weight", "bias") if getattr(m, pn) is not None}

    def penalty(self) -> torch.Tensor | None:
        if not self.fisher or self.ewc_lambda == 0:
            return None
        total = None
        for key, p in self._params().items():
            term = (self.fisher[key] * (p - self.anchor[key]).square()).sum()
            total = term if total is None else total + term
        return 0.5 * self.ewc_lambda * total

    @torch.no_grad()
    def end_task(self, task: int, data: FisherData | None = None) -> dict[str, float]:
        fisher = fisher_diagonal(self.layers, self._require(data))
        params = self._params()
        for key, p in params.items():
            ln, pn = key.rsplit(".", 1)
            f_t = fisher[ln][pn]
            self.fisher[key] = f_t if key not in self.fisher else self.gamma * self.fisher[key] + f_t
            self.anchor[key] = p.detach().clone()
        self.tasks_done = task
        return {"fisher_mean": float(torch.stack([f.mean() for f in self.fisher.values()]).mean())}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "fisher": dict(self.fisher), "anchor": dict(self.anchor)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        params = self._params()
        self.fisher = {k: v.to(params[k].device) for k, v in state["fisher"].items()}
        self.anchor = {k: v.to(params[k].device) for k, v in state["anchor"].items()}
