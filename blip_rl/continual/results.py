"""The score matrix of a continual run and its files (``results.json``, ``results.csv``)."""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import metrics
from ..io import atomic_write_json, atomic_write_text

__all__ = ["Results"]


@dataclass
class Results:
    """Scores after each task: ``raw[i][j]`` and ``normalized[i][j]`` on task j after task i.

    Entries for tasks not learned yet are ``None``. ACC and BWT are computed on the normalized
    scores (raw accuracies for classification, scores mapped to [0, 1] for Atari).
    """

    tasks: list[str]
    method: str
    raw: list[list[float | None]] = field(default_factory=list)
    normalized: list[list[float | None]] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)

    def add_row(self, raw: list[float], normalized: list[float | None], step: int) -> None:
        pad = [None] * (len(self.tasks) - len(raw))
        self.raw.append(list(raw) + pad)
        self.normalized.append(list(normalized) + pad)
        self.steps.append(int(step))

    def _scored(self) -> list[list[float | None]]:
        # Where no normalization exists, fall back to raw scores (ACC/BWT then in raw units).
        return [[n if n is not None else r for r, n in zip(rr, nn)] for rr, nn in zip(self.raw, self.normalized)]

    @property
    def acc(self) -> float:
        return metrics.acc(self._scored())

    @property
    def bwt(self) -> float:
        return metrics.bwt(self._scored())

    def to_dict(self) -> dict[str, Any]:
        def clean(x):
            return None if x is None or (isinstance(x, float) and math.isnan(x)) else x
        return {
            "method": self.method,
            "tasks": self.tasks,
            "tasks_learned": len(self.raw),
            "raw": self.raw,
            "normalized": self.normalized,
            "steps": self.steps,
            "acc": clean(self.acc) if self.raw else None,
            "bwt": clean(self.bwt) if self.raw else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Results":
        return cls(tasks=list(d["tasks"]), method=d["method"], raw=d["raw"], normalized=d["normalized"],
                   steps=list(d["steps"]))

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["after_task", "step", "eval_task", "raw", "normalized"])
        for i, (rr, nn) in enumerate(zip(self.raw, self.normalized)):
            for j, task in enumerate(self.tasks[: i + 1]):
                w.writerow([self.tasks[i], self.steps[i], task, rr[j], "" if nn[j] is None else nn[j]])
        return buf.getvalue()

    def save(self, run_dir: str | Path) -> None:
        run_dir = Path(run_dir)
        atomic_write_json(run_dir / "results.json", self.to_dict())
        atomic_write_text(run_dir / "results.csv", self.to_csv())

    def table(self, *, normalized: bool = False) -> str:
        """The matrix as aligned text: one row per task learned, one column per task."""
        m = self.normalized if normalized else self.raw
        width = max(10, *(len(t) for t in self.tasks))
        lines = [f"{'after':<{width}} " + " ".join(f"{t:>{width}}" for t in self.tasks)]
        for i, row in enumerate(m):
            cells = [f"{v:>{width}.3f}" if v is not None else f"{'-':>{width}}" for v in row]
            lines.append(f"{self.tasks[i]:<{width}} " + " ".join(cells))
        if self.raw:
            lines.append(f"ACC {self.acc:.3f}   BWT {self.bwt:.3f}" + ("" if len(self.raw) > 1 else " (one task)"))
        return "\n".join(lines)
