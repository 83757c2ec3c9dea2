"""PackNet (Mallya & Lazebnik, CVPR 2018): one network, split by magnitude pruning into one
set of weights per task.

Each weight of the trunk has an owner: 0 (free) or the task that kept it. While task k learns,
only free weights train (earlier tasks' weights are frozen exactly: their gradients are zeroed
before the step and their values restored after it). At the end of task k, each layer keeps the
largest-magnitude ``1 / (capacity - k + 1)`` of its free weights for task k and sets the others
to zero (they stay free for later tasks); then task k retrains its kept weights alone for
``retrain`` of a task's budget. Evaluating task j uses only the weights of tasks 1..j (the
others are masked to zero in :meth:`PackNet.before_eval` and restored after), so what task j
computes never changes once it is learned.

Biases are trained on the first task only and frozen after it (as Continual World's PackNet),
since they cannot be split by magnitude.

``capacity``: how many tasks the network is split into (default: the run's number of tasks).
Each task gets about 1 / capacity of each layer; a run longer than ``capacity`` is an error
before it starts. Memory: one owner byte per trunk weight, plus the frozen values of the task
in progress (4 bytes per weight), whatever the number of tasks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..fisher import FisherData
from .base import ContinualMethod, MethodError, register

__all__ = ["PackNet", "PackNetOptions"]

#: Owners are stored as uint8: task numbers 1..255.
MAX_CAPACITY = 255


@dataclass
class PackNetOptions:
    capacity: int | None = None  #: tasks the network is split into; None: the run's number of tasks
    retrain: float = 0.1  #: retraining after pruning, as a fraction of a task's budget (0: none)

    def __post_init__(self) -> None:
        if self.capacity is not None and not 1 <= self.capacity <= MAX_CAPACITY:
            raise ValueError(f"capacity must be in 1..{MAX_CAPACITY}, got {self.capacity}")
        if not 0 <= self.retrain <= 1:
            raise ValueError(f"retrain is a fraction of a task's budget in [0, 1], got {self.retrain}")


def _capacity_error(capacity: int, n_tasks: int) -> MethodError:
    return MethodError(f"packnet holds {capacity} tasks (option capacity) but this sequence has {n_tasks}: set "
                       f"methods.packnet.capacity={n_tasks} (--set methods.packnet.capacity={n_tasks}), or learn "
                       "fewer tasks")


@register
class PackNet(ContinualMethod):
    name = "packnet"
    Options = PackNetOptions

    def __init__(self, trunk: nn.Module, *, capacity: int | None = None, retrain: float = 0.1) -> None:
        super().__init__(trunk)
        PackNetOptions(capacity, retrain)  # checks the values
        self.capacity = capacity
        self.retrain = float(retrain)
        params = dict(trunk.named_parameters())
        #: 0: free; k: kept by task k (weights); biases: 0 until the first task ends, then 1.
        self.owner = {n: torch.zeros_like(p, dtype=torch.uint8) for n, p in params.items()}
        #: the task being learned (0: none yet) and whether it is past pruning (retraining).
        self.current = 0
        self._frozen: dict[str, torch.Tensor] = {}
        self._values: dict[str, torch.Tensor] = {}
        self._masked: dict[str, torch.Tensor] = {}

    # -- capacity --------------------------------------------------------------------------------
    @classmethod
    def check_tasks(cls, n_tasks: int, options: dict[str, Any]) -> None:
        capacity = options.get("capacity")
        if capacity is not None and n_tasks > capacity:
            raise _capacity_error(capacity, n_tasks)
        if n_tasks > MAX_CAPACITY:
            raise MethodError(f"packnet holds at most {MAX_CAPACITY} tasks, this sequence has {n_tasks}")

    def start_sequence(self, tasks: list[str]) -> None:
        if self.capacity is None:
            self.capacity = max(len(tasks), 1)
        if len(tasks) > self.capacity:
            raise _capacity_error(self.capacity, len(tasks))

    # -- training --------------------------------------------------------------------------------
    @property
    def retraining(self) -> bool:
        """Whether the current task is pruned already (its kept weights retrain alone)."""
        return self.current > 0 and self.tasks_done >= self.current

    def start_task(self, task: int) -> None:
        if self.capacity is not None and task > self.capacity:
            raise _capacity_error(self.capacity, task)
        self.current = task
        self._freeze()

    def _freeze(self) -> None:
        """What may not change now: earlier tasks' weights (learning), or all but the current
        task's (retraining); the values to restore them to after each step."""
        mine = self.current if self.retraining else 0
        self._frozen, self._values = {}, {}
        for n, p in self.trunk.named_parameters():
            frozen = self.owner[n] != mine
            if bool(frozen.any()):
                self._frozen[n] = frozen
                self._values[n] = p.detach().clone()

    @torch.no_grad()
    def before_step(self) -> None:
        for n, p in self.trunk.named_parameters():
            if n in self._frozen and p.grad is not None:
                p.grad.masked_fill_(self._frozen[n], 0)

    @torch.no_grad()
    def after_step(self) -> None:
        # Exact even where an optimizer moves weights without a gradient (weight decay, momentum).
        for n, p in self.trunk.named_parameters():
            if n in self._frozen:
                p.copy_(torch.where(self._frozen[n], self._values[n], p))

    @torch.no_grad()
    def end_task(self, task: int, data: FisherData | None = None) -> dict[str, float]:
        capacity = self.capacity or task
        keep_share = 1.0 / max(capacity - task + 1, 1)
        stats: dict[str, float] = {}
        for n, p in self.trunk.named_parameters():
            owner = self.owner[n]
            free = owner == 0
            if p.dim() <= 1:  # biases: the first task's, frozen after it
                owner[free] = 1
                continue
            n_free = int(free.sum())
            n_keep = n_free if keep_share >= 1 else int(round(n_free * keep_share))
            if 0 < n_keep < n_free:
                magnitude = p.detach().abs().masked_fill(~free, -1.0).flatten()
                kept = torch.zeros(p.numel(), dtype=torch.bool, device=p.device)
                kept[magnitude.topk(n_keep).indices] = True
                kept = kept.view_as(p)
            else:
                kept = free if n_keep else torch.zeros_like(free)
            owner[kept] = task
            p.masked_fill_(free & ~kept, 0.0)  # pruned: zero, and free for the tasks to come
            stats[f"{n}/kept"] = n_keep / p.numel()
            stats[f"{n}/free"] = float((owner == 0).float().mean())
        self.tasks_done = task
        self.current = task
        self._freeze()  # retraining: the task's kept weights only
        return stats

    def retrain_budget(self, task: int, budget: int) -> int:
        if self.retrain <= 0 or task >= (self.capacity or task):  # the last task prunes nothing
            return 0
        return max(1, int(round(budget * self.retrain)))

    # -- evaluation ------------------------------------------------------------------------------
    def _visible(self, task: int, owner: torch.Tensor) -> torch.Tensor:
        """Weights task ``task`` uses: those of tasks 1..task, and the free ones while it learns."""
        visible = (owner >= 1) & (owner <= task)
        if task == self.current and not self.retraining:
            visible |= owner == 0
        return visible

    @torch.no_grad()
    def before_eval(self, task: int) -> None:
        if self._masked:
            raise RuntimeError("packnet: before_eval() called twice without after_eval(); the masked weights "
                               "would be lost")
        params = dict(self.trunk.named_parameters())
        hidden = {n: ~self._visible(task, self.owner[n]) for n in params}
        hidden = {n: h for n, h in hidden.items() if bool(h.any())}
        saved = {n: params[n].detach().clone() for n in hidden}  # all copies first, then mask
        self._masked = saved
        for n, h in hidden.items():
            params[n].masked_fill_(h, 0.0)

    @torch.no_grad()
    def after_eval(self, task: int) -> None:
        for n, p in self.trunk.named_parameters():
            if n in self._masked:
                p.copy_(self._masked[n])
        self._masked = {}

    # -- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "owner": dict(self.owner), "capacity": self.capacity, "current": self.current}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        params = dict(self.trunk.named_parameters())
        self.owner = {k: v.to(params[k].device, torch.uint8) for k, v in state["owner"].items()}
        self.capacity = state["capacity"]
        self.current = int(state["current"])
        if self.current:
            self._freeze()
