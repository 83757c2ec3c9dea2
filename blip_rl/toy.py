"""A two-task toy problem that shows forgetting and BLIP's protection in seconds on a CPU.

Each task is binary classification of 16-d Gaussian inputs by its own random teacher network;
a shared BLIP MLP trunk feeds one head per task. Task 2 pulls the trunk away from what task 1
needs, so fine-tuning forgets task 1 while BLIP keeps it. Used by ``blip-rl demo --toy`` and the
core tests; the full classification benchmarks live in :mod:`blip_rl.classification`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .core import BlipLinear, FisherData, make_method

__all__ = ["ToyResult", "make_toy_tasks", "run_toy"]


@dataclass
class ToyResult:
    """Accuracies of a two-task toy run.

    :param acc_task1_after1: task-1 accuracy right after learning task 1.
    :param acc_task1_after2: task-1 accuracy after learning task 2 (what was kept).
    :param acc_task2_after2: task-2 accuracy after learning task 2 (what was learned).
    """

    method: str
    acc_task1_after1: float
    acc_task1_after2: float
    acc_task2_after2: float

    @property
    def forgetting(self) -> float:
        return self.acc_task1_after1 - self.acc_task1_after2


def make_toy_tasks(n: int = 2000, dim: int = 16, *, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Two tasks ``(x, y)``; labels from independent random teacher MLPs, balanced at the median."""
    g = torch.Generator().manual_seed(seed)
    tasks = []
    for _ in range(2):
        x = torch.randn(n, dim, generator=g)
        w1 = torch.randn(dim, 32, generator=g)
        w2 = torch.randn(32, generator=g)
        score = torch.tanh(x @ w1) @ w2
        tasks.append((x, (score > score.median()).long()))
    return tasks


class _ToyNet(nn.Module):
    def __init__(self, dim: int, hidden: int, f_prior: float) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            BlipLinear(dim, hidden, f_prior=f_prior), nn.ReLU(),
            BlipLinear(hidden, hidden, f_prior=f_prior), nn.ReLU(),
        )
        self.heads = nn.ModuleList([nn.Linear(hidden, 2) for _ in range(2)])

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        return self.heads[task](self.trunk(x))


def _accuracy(net: _ToyNet, x: torch.Tensor, y: torch.Tensor, task: int) -> float:
    with torch.no_grad():
        return float((net(x, task).argmax(1) == y).float().mean())


def run_toy(method: str = "blip", *, seed: int = 0, epochs: int = 30, f_prior: float = 1e-8) -> ToyResult:
    """Learn the two toy tasks in sequence with ``method``; accuracies on held-out halves."""
    torch.manual_seed(seed)
    tasks = make_toy_tasks(seed=seed)
    net = _ToyNet(tasks[0][0].shape[1], 32, f_prior)
    kwargs = {"f_prior": f_prior} if method == "blip" else {}
    cl = make_method(method, net.trunk, **kwargs)
    splits = [((x[: len(x) // 2], y[: len(y) // 2]), (x[len(x) // 2:], y[len(y) // 2:])) for x, y in tasks]
    acc_1_after_1 = 0.0
    for t, ((xtr, ytr), (xte, yte)) in enumerate(splits):
        cl.start_task(t + 1)
        opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-2)
        cl.attach_optimizer(opt)
        g = torch.Generator().manual_seed(seed + t)
        for _ in range(epochs):
            for idx in torch.randperm(len(xtr), generator=g).split(64):
                loss = nn.functional.cross_entropy(net(xtr[idx], t), ytr[idx])
                pen = cl.penalty()
                if pen is not None:
                    loss = loss + pen
                opt.zero_grad()
                loss.backward()
                cl.before_step()
                opt.step()
        data = FisherData(xtr, lambda x, t=t: net(x, t), generator=torch.Generator().manual_seed(seed))
        cl.end_task(t + 1, data if cl.needs_fisher else None)
        if t == 0:
            acc_1_after_1 = _accuracy(net, splits[0][1][0], splits[0][1][1], 0)
    return ToyResult(
        method=method,
        acc_task1_after1=acc_1_after_1,
        acc_task1_after2=_accuracy(net, splits[0][1][0], splits[0][1][1], 0),
        acc_task2_after2=_accuracy(net, splits[1][1][0], splits[1][1][1], 1),
    )
