"""Continual-learning methods as one interface with four hooks, named by their place in the loop.

A method protects the parameters of a shared ``trunk`` (the network every task uses; task heads
are the learner's business). The same hooks serve the PPO agent and the classification trainer:

``start_task(task)``  before the first update of task ``task`` (1-based)
``penalty()``         a loss term added before ``backward()`` (or ``None``)
``after_step()``      after EVERY optimizer step (attach it once with :meth:`attach_optimizer`)
``end_task(task, data)``  after the task, with inputs for the Fisher; returns scalar statistics

Whatever must survive a checkpoint is in ``state_dict()`` (BLIP's own state lives in the BLIP
layers' buffers, so it is in the trunk's ``state_dict``).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from .bits import bit_statistics
from .fisher import FisherData, fisher_diagonal, supported_layers
from .info_gain import check_rule
from .quant import BlipLayer, blip_layers

__all__ = ["ContinualMethod", "Blip", "OnlineEWC", "FineTune", "FineTuneFixed", "METHODS", "make_method"]


class ContinualMethod:
    """Base class: a no-op method (plain fine-tuning). Override the hooks you need."""

    name = "base"
    #: Whether :meth:`end_task` needs a :class:`FisherData`.
    needs_fisher = False

    def __init__(self, trunk: nn.Module) -> None:
        self.trunk = trunk
        self.tasks_done = 0

    def start_task(self, task: int) -> None:
        """Called before the first update of ``task`` (1-based)."""

    def penalty(self) -> torch.Tensor | None:
        """A regularization term to add to the loss, or ``None``."""
        return None

    def after_step(self) -> None:
        """Called after every optimizer step."""

    def end_task(self, task: int, data: FisherData | None = None) -> dict[str, float]:
        """Called once the task is learned; returns statistics to log."""
        self.tasks_done = task
        return {}

    def attach_optimizer(self, optimizer: torch.optim.Optimizer):
        """Run :meth:`after_step` after every ``optimizer.step()``; returns the hook handle."""
        return optimizer.register_step_post_hook(lambda _opt, _args, _kwargs: self.after_step())

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tasks_done": self.tasks_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"state of method {state.get('name')!r} cannot be loaded into {self.name!r}")
        self.tasks_done = int(state["tasks_done"])

    def _require(self, data: FisherData | None) -> FisherData:
        if data is None:
            raise ValueError(f"method {self.name!r} needs Fisher data at the end of a task "
                             "(inputs of the task just learned and a logits function)")
        return data


class FineTune(ContinualMethod):
    """Sequential fine-tuning (FT): no protection at all; the forgetting baseline."""

    name = "ft"


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


class OnlineEWC(ContinualMethod):
    """Online EWC (Schwarz et al. 2018): penalty lambda/2 * sum F (theta - theta*)^2.

    After each task F <- gamma * F + F_t and theta* <- theta, over the trunk's linear and conv
    layers, with F_t from the same exact Fisher code as BLIP.

    :param ewc_lambda: strength lambda of the penalty (>= 0).
    :param gamma: decay of the accumulated Fisher in (0, 1].
    """

    name = "ewc"
    needs_fisher = True

    def __init__(self, trunk: nn.Module, *, ewc_lambda: float = 5000.0, gamma: float = 1.0) -> None:
        super().__init__(trunk)
        if not ewc_lambda >= 0:
            raise ValueError(f"ewc_lambda must be >= 0, got {ewc_lambda}")
        if not 0 < gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {gamma}")
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


class Blip(ContinualMethod):
    """BLIP: clip into the frozen interval after every step; freeze bits by information gain.

    :param f_prior: F_prior; if given, set on every BLIP layer that has not consolidated yet.
    :param ig_rule: ``"paper"`` (eq. 8) or ``"official"`` (the authors' code).
    :param strict_radius: clip to b * 2^-(n+1) instead of the paper's b * 2^-n.
    """

    name = "blip"
    needs_fisher = True

    def __init__(
        self,
        trunk: nn.Module,
        *,
        f_prior: float | None = None,
        ig_rule: str = "paper",
        strict_radius: bool = False,
    ) -> None:
        super().__init__(trunk)
        self.ig_rule = check_rule(ig_rule)
        self.layers: dict[str, BlipLayer] = dict(blip_layers(trunk))
        if not self.layers:
            raise ValueError("BLIP found no BLIP layer in the trunk: build it from BlipConv2d/BlipLinear "
                             "or convert it with blip_rl.core.to_blip()")
        plain = [n for n, m in supported_layers(trunk).items() if not isinstance(m, BlipLayer)]
        if plain:
            raise ValueError(f"trunk layers {plain} are not BLIP layers and would be forgotten; "
                             "convert them with blip_rl.core.to_blip()")
        for layer in self.layers.values():
            if f_prior is not None and int(layer.num_tasks) == 0:
                layer.set_prior(f_prior)
            layer.strict_radius = bool(strict_radius)
            layer.refresh_interval()

    def after_step(self) -> None:
        for layer in self.layers.values():
            layer.clip_()

    def end_task(self, task: int, data: FisherData | None = None) -> dict[str, float]:
        fisher = fisher_diagonal(self.layers, self._require(data))
        stats: dict[str, float] = {}
        for name, layer in self.layers.items():
            grown = layer.consolidate_(fisher[name], rule=self.ig_rule)
            for pn, add in grown.items():
                s = bit_statistics(layer.frozen_bits(pn), layer.max_bits)
                stats[f"{name}.{pn}/mean_bits"] = s["mean_bits"]
                stats[f"{name}.{pn}/bits_added"] = float(add.float().mean())
        self.tasks_done = task
        return stats


METHODS: dict[str, Callable[..., ContinualMethod]] = {
    "blip": Blip,
    "ewc": OnlineEWC,
    "ft": FineTune,
    "ft-fix": FineTuneFixed,
}


def make_method(name: str, trunk: nn.Module, **kwargs: Any) -> ContinualMethod:
    """Build a method by name (``blip``, ``ewc``, ``ft``, ``ft-fix``) with its own options."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(METHODS)}")
    return METHODS[name](trunk, **kwargs)
