"""MAS, Memory Aware Synapses (Aljundi et al., ECCV 2018).

A weight's importance is the mean, over the task's own inputs, of the absolute gradient of the
squared L2 norm of the network's output (the task head's logits): no labels, no rewards. It
accumulates over tasks; the penalty is strength/2 * sum importance * (theta - theta*)^2.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..fisher import FisherData
from .base import register
from .quadratic import AnchoredPenalty, check_strength

__all__ = ["MAS", "MASOptions"]


@dataclass
class MASOptions:
    #: weight of the penalty. 0.1: on pdigits (5 seeds, docs/classification.md) 1.0 diverged on some seeds and
    #: 0.01 forgot (BWT -0.009); 0.1 kept (BWT -0.001) at the best accuracy. Untuned for Atari.
    strength: float = 0.1
    samples: int = 256  #: inputs of the task used (one backward each: MAS takes |per-sample gradient|)

    def __post_init__(self) -> None:
        check_strength(self.strength)
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")


@register
class MAS(AnchoredPenalty):
    name = "mas"
    needs_fisher = True  # it needs the task's inputs and its logits function (labels are not used)
    Options = MASOptions

    def __init__(self, trunk: nn.Module, *, strength: float = 0.1, samples: int = 256) -> None:
        super().__init__(trunk, strength=strength)
        MASOptions(strength, samples)  # checks the values
        self.samples = int(samples)

    def task_importance(self, task: int, data: FisherData | None) -> dict[str, torch.Tensor]:
        data = self._require(data)
        params = self.params()
        total = {n: torch.zeros_like(p) for n, p in params.items()}
        inputs = data.inputs[: self.samples]
        with torch.enable_grad():
            for x in inputs.split(1):
                out = data.logits_fn(x)
                grads = torch.autograd.grad(out.float().square().sum(), list(params.values()), allow_unused=True)
                for (n, _), g in zip(params.items(), grads):
                    if g is not None:
                        total[n] += g.abs()
        return {n: t / len(inputs) for n, t in total.items()}
