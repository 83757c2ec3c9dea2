"""Information gain and bit growth after a task (paper eq. 7-9), as pure functions.

Two rules (see shared BLIP_METHOD.md):

``"paper"`` (default), with t the 1-based index of the task just learned::

    IG    = 1/2 * log2((t * F_old + F_t) / (t * F_old))          (eq. 8)
    F_new = (t * F_old + F_t) / (t + 1)                           (eq. 7)

``"official"``, the authors' code (github.com/Yujun-Shi/BLIP, quant_layer.update_bits), where the
prior counts as a pseudo-task (k = t - 1)::

    IG    = 1/2 * log2((F_t + (k + 1) * F_old) / ((k + 2) * F_old))
    F_new = ((k + 1) * F_old + F_t) / (k + 2)

New bits (eq. 9): n_t = clamp(ceil(IG), 0, N - n).
"""
from __future__ import annotations

import torch

__all__ = ["IG_RULES", "check_rule", "information_gain", "bit_growth", "updated_fisher"]

IG_RULES = ("paper", "official")


def check_rule(rule: str) -> str:
    """Validate an information-gain rule name."""
    if rule not in IG_RULES:
        raise ValueError(f"ig_rule must be one of {IG_RULES}, got {rule!r}")
    return rule


def _check_task(task: int) -> None:
    if isinstance(task, bool) or not isinstance(task, int) or task < 1:
        raise ValueError(f"task must be the 1-based index of the task just learned, got {task!r}")


def information_gain(
    f_old: torch.Tensor, f_task: torch.Tensor, task: int, rule: str = "paper"
) -> torch.Tensor:
    """Information gain in bits of the task just learned, per parameter.

    :param f_old: running Fisher F_{0:t-1} (strictly positive: it starts at the prior).
    :param f_task: Fisher F_t of task t (>= 0).
    :param task: t, the 1-based index of the task just learned.
    :param rule: ``"paper"`` (eq. 8) or ``"official"`` (the authors' code).
    """
    _check_task(task)
    check_rule(rule)
    f_old = f_old.to(torch.float32)
    f_task = f_task.to(torch.float32)
    if rule == "paper":
        ratio = (task * f_old + f_task) / (task * f_old)
    else:
        k = task - 1
        ratio = (f_task + (k + 1) * f_old) / ((k + 2) * f_old)
    return 0.5 * torch.log2(ratio)


def bit_growth(ig: torch.Tensor, bits: torch.Tensor, max_bits: int) -> torch.Tensor:
    """New frozen bits n_t = clamp(ceil(IG), 0, N - n) (eq. 9), in the dtype of ``bits``."""
    grow = torch.ceil(ig).clamp(min=0)
    room = (max_bits - bits.to(torch.int32)).to(grow.dtype)
    return torch.minimum(grow, room).to(bits.dtype)


def updated_fisher(
    f_old: torch.Tensor, f_task: torch.Tensor, task: int, rule: str = "paper"
) -> torch.Tensor:
    """Running Fisher after task t: F_{0:t} (eq. 7, or the code's pseudo-task average)."""
    _check_task(task)
    check_rule(rule)
    if rule == "paper":
        return (task * f_old + f_task) / (task + 1)
    k = task - 1
    return ((k + 1) * f_old + f_task) / (k + 2)
