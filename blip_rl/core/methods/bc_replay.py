"""Behaviour-cloning replay (as ClonEx in COOM, Wolczyk et al. 2022; CLEAR's cloning terms,
Rolnick et al. 2019): keep a fixed sample of each earlier task's inputs with what the network
answered on them when the task ended, and clone it while later tasks learn.

At the end of task k, ``samples`` of its inputs (the states of the policy's own last rollouts,
or training images) are stored with head k's log-probabilities and, for RL, its values. Every
update of a later task adds

    strength * mean_t [ KL(p_old(.|x) || p_now(.|x)) + value_weight * (V_now(x) - V_old(x))^2 ]

over a replay minibatch of ``batch`` stored inputs split evenly across the earlier tasks t. Right
after a task ends the penalty is exactly zero (the network is the one that made the targets;
with dropout in the network, as the classification MLPs have, only in evaluation mode). The
value term is a squared error in the value head's units (returns of clipped rewards for Atari).

Memory grows with the tasks: per task ``samples`` inputs (Atari: 4x84x84 bytes each, 28 KB)
plus their outputs; :meth:`BCReplay.memory_bytes` reports it, and ``end_task`` logs it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..fisher import FisherData
from .base import ContinualMethod, register

__all__ = ["BCReplay", "BCReplayOptions"]


@dataclass
class BCReplayOptions:
    samples: int = 1000  #: inputs kept per task
    batch: int = 64  #: replayed inputs per update, split evenly across the earlier tasks
    strength: float = 1.0  #: weight of the cloning penalty
    value_weight: float = 0.5  #: weight of the value term inside it (RL; classification has none)

    def __post_init__(self) -> None:
        if self.samples < 1 or self.batch < 1:
            raise ValueError(f"samples and batch must be >= 1, got {self.samples} and {self.batch}")
        if not (self.strength >= 0 and self.value_weight >= 0):
            raise ValueError(f"strength and value_weight must be >= 0, got {self.strength} and {self.value_weight}")


@register
class BCReplay(ContinualMethod):
    name = "bc-replay"
    needs_fisher = True  # it needs the task's inputs at its end
    Options = BCReplayOptions

    def __init__(self, trunk: nn.Module, *, samples: int = 1000, batch: int = 64, strength: float = 1.0,
                 value_weight: float = 0.5) -> None:
        super().__init__(trunk)
        BCReplayOptions(samples, batch, strength, value_weight)  # checks the values
        self.samples, self.batch = int(samples), int(batch)
        self.strength, self.value_weight = float(strength), float(value_weight)
        #: per earlier task (1-based): {"inputs", "log_probs", "values" (or absent)}
        self.buffer: dict[int, dict[str, torch.Tensor]] = {}

    @torch.no_grad()
    def end_task(self, task: int, data: FisherData | None = None) -> dict[str, float]:
        data = self._require(data)
        inputs = data.inputs
        if len(inputs) > self.samples:
            seed = data.generator.initial_seed() if data.generator is not None else 0  # the run's seed, per task
            gen = torch.Generator().manual_seed(seed * 1000 + task)
            inputs = inputs[torch.randperm(len(inputs), generator=gen)[: self.samples].to(inputs.device)]
        log_probs, values = [], []
        for x in inputs.split(256):
            logits, value = self.task_outputs(x, task)
            log_probs.append(F.log_softmax(logits.float(), -1))
            if value is not None:
                values.append(value.float().flatten())
        entry = {"inputs": inputs.detach().clone(), "log_probs": torch.cat(log_probs)}
        if values:
            entry["values"] = torch.cat(values)
        self.buffer[task] = entry
        self.tasks_done = task
        return {"replay_states": float(sum(len(e["inputs"]) for e in self.buffer.values())),
                "replay_mib": self.memory_bytes() / 2**20}

    def memory_bytes(self) -> int:
        """Bytes the replay buffer holds (inputs and targets of every earlier task)."""
        return sum(t.numel() * t.element_size() for e in self.buffer.values() for t in e.values())

    def penalty(self) -> torch.Tensor | None:
        if not self.buffer or self.strength == 0:
            return None
        per_task = max(1, self.batch // len(self.buffer))
        total = None
        for task, entry in self.buffer.items():
            n = len(entry["inputs"])
            idx = torch.randint(n, (min(per_task, n),), device=entry["inputs"].device)
            logits, value = self.task_outputs(entry["inputs"][idx], task)
            old = entry["log_probs"][idx]
            kl = F.kl_div(F.log_softmax(logits.float(), -1), old, log_target=True, reduction="batchmean")
            term = kl
            if value is not None and "values" in entry and self.value_weight > 0:
                term = term + self.value_weight * (value.float().flatten() - entry["values"][idx]).square().mean()
            total = term if total is None else total + term
        return self.strength * total / len(self.buffer)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "buffer": {str(k): dict(v) for k, v in self.buffer.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        device = next(self.trunk.parameters()).device
        self.buffer = {int(k): {n: t.to(device) for n, t in v.items()} for k, v in state["buffer"].items()}
