"""Policy drift: how far the network's answers on an earlier task's own inputs have moved.

At the end of each task a fixed sample of its inputs (``samples``, 512 by default: states of the
policy's own last rollouts, or training images) is kept with the task head's action (class)
distribution on them. At every later evaluation,

    policy_drift   = mean_x KL(p_then(.|x) || p_now(.|x))
    greedy_changed = share of x whose most likely action (class) changed

are measured with the method's evaluation hooks around them (a PackNet mask applies). Unlike
episode scores they carry no environment noise: a network that did not change drifts exactly 0.
The sample lives in the checkpoint (Atari: 28 KB per state), so a resumed run measures against
the same states.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

__all__ = ["DriftProbe", "Drift"]

#: (policy_drift, greedy_changed) of one task.
Drift = tuple[float, float]

#: ``logits(inputs, k)``: task k's (0-based) logits in evaluation mode, without gradients.
LogitsFn = Callable[[torch.Tensor, int], torch.Tensor]


class DriftProbe:
    """The kept sample of every task learned so far and its distribution then.

    :param samples: inputs kept per task (0: drift is not measured).
    :param batch_size: inputs per forward pass when measuring.
    """

    def __init__(self, samples: int = 512, *, batch_size: int = 256) -> None:
        if samples < 0:
            raise ValueError(f"drift samples must be >= 0 (0: off), got {samples}")
        self.samples = int(samples)
        self.batch_size = int(batch_size)
        #: task index (0-based) -> {"inputs", "log_probs"} (on the CPU)
        self.kept: dict[int, dict[str, torch.Tensor]] = {}

    @property
    def enabled(self) -> bool:
        return self.samples > 0

    def _log_probs(self, logits_fn: LogitsFn, inputs: torch.Tensor, k: int, device: torch.device) -> torch.Tensor:
        with torch.no_grad():
            out = [F.log_softmax(logits_fn(x.to(device), k).float(), -1).cpu() for x in inputs.split(self.batch_size)]
        return torch.cat(out)

    def keep(self, k: int, inputs: torch.Tensor, logits_fn: LogitsFn, *, seed: int = 0) -> None:
        """Keep a seeded sample of task k's ``inputs`` and the distribution on them now."""
        if not self.enabled:
            return
        if len(inputs) > self.samples:
            gen = torch.Generator().manual_seed(seed * 1000 + k)
            inputs = inputs[torch.randperm(len(inputs), generator=gen)[: self.samples].to(inputs.device)]
        inputs = inputs.detach()
        self.kept[k] = {"inputs": inputs.cpu().clone(), "log_probs": self._log_probs(logits_fn, inputs, k, inputs.device)}

    def measure(self, k: int, logits_fn: LogitsFn, device: torch.device | str = "cpu") -> Drift | None:
        """(mean KL(then || now), share of greedy choices changed) of task k, or None if not kept."""
        entry = self.kept.get(k)
        if entry is None:
            return None
        now = self._log_probs(logits_fn, entry["inputs"], k, torch.device(device))
        then = entry["log_probs"]
        kl = (then.exp() * (then - now)).sum(-1).clamp(min=0).mean()
        changed = (then.argmax(-1) != now.argmax(-1)).float().mean()
        return float(kl), float(changed)

    def state_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "kept": {str(k): dict(v) for k, v in self.kept.items()}}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Take up a checkpoint's probe (``None``: a checkpoint of a version without one)."""
        if not state:
            return
        self.kept = {int(k): {n: t.cpu() for n, t in v.items()} for k, v in state["kept"].items()}
