"""BLIP (Shi et al., CVPR 2021): clip into the frozen interval after every step; after each task,
Fisher -> information gain -> frozen bits (the state lives in the BLIP layers' buffers)."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..bits import bit_statistics
from ..fisher import FisherData, fisher_diagonal, supported_layers
from ..info_gain import check_rule
from ..quant import BlipLayer, blip_layers, check_consolidation
from .base import ContinualMethod, register

__all__ = ["Blip", "BlipOptions"]


@dataclass
class BlipOptions:
    f_prior: float | None = None  #: F_prior; None keeps the layers' own (set when they were built)
    ig_rule: str = "paper"  #: "paper" (eq. 8) or "official" (the authors' code)
    strict_radius: bool = False  #: clip radius b*2^-(n+1) instead of the paper's b*2^-n
    #: "keep" (the paper: theta stays, only the anchor is quantized) or "overwrite" (the authors'
    #: code: theta = Q(theta, n), which zeroes every weight with no frozen bit)
    consolidation: str = "keep"

    def __post_init__(self) -> None:
        if self.f_prior is not None and not self.f_prior > 0:
            raise ValueError(f"f_prior must be > 0, got {self.f_prior}")
        check_rule(self.ig_rule)
        check_consolidation(self.consolidation)


@register
class Blip(ContinualMethod):
    """BLIP: clip into the frozen interval after every step; freeze bits by information gain.

    :param f_prior: F_prior; if given, set on every BLIP layer that has not consolidated yet.
    :param ig_rule: ``"paper"`` (eq. 8) or ``"official"`` (the authors' code).
    :param strict_radius: clip to b * 2^-(n+1) instead of the paper's b * 2^-n.
    :param consolidation: ``"keep"`` (the paper's Alg. 1: after a task only the anchors are
        quantized, the weights stay) or ``"overwrite"`` (the authors' ``sync_weight``: the weights
        become their quantized anchors, and every weight with no frozen bit becomes 0).
    """

    name = "blip"
    needs_fisher = True
    Options = BlipOptions

    def __init__(
        self,
        trunk: nn.Module,
        *,
        f_prior: float | None = None,
        ig_rule: str = "paper",
        strict_radius: bool = False,
        consolidation: str = "keep",
    ) -> None:
        super().__init__(trunk)
        self.ig_rule = check_rule(ig_rule)
        self.consolidation = check_consolidation(consolidation)
        self.strict_radius = bool(strict_radius)
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
            grown = layer.consolidate_(fisher[name], rule=self.ig_rule, consolidation=self.consolidation)
            for pn, add in grown.items():
                s = bit_statistics(layer.frozen_bits(pn), layer.max_bits)
                stats[f"{name}.{pn}/mean_bits"] = s["mean_bits"]
                stats[f"{name}.{pn}/bits_added"] = float(add.float().mean())
        self.tasks_done = task
        return stats
