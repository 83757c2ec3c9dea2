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

__all__ = ["Results", "Evaluation", "TIME_PARTS"]

#: The parts of a run's wall time, in the order the end-of-run line shows them.
TIME_PARTS = ("training", "evaluation", "consolidation", "checkpoints", "diagnostics")


@dataclass
class Evaluation:
    """One evaluation of one task: its score and, for RL, what the games were like."""

    #: Mean raw score (game score, or accuracy).
    score: float
    #: Games played (0 where the notion does not apply, e.g. classification).
    episodes: int = 0
    #: Games cut at the step limit instead of ending by themselves.
    cut: int = 0
    #: Mean agent steps per game, or None.
    mean_steps: float | None = None
    #: Env steps stepped (all envs), and the wall time of the evaluation, for its throughput.
    env_steps: int = 0
    seconds: float = 0.0


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
    #: ``cut[i][j]``: evaluation games of task j after task i cut at the step limit (None: n/a).
    cut: list[list[int | None]] = field(default_factory=list)
    #: ``episodes[i][j]``: evaluation games played of task j after task i (None: n/a).
    episodes: list[list[int | None]] = field(default_factory=list)
    #: Wall seconds per part of the run (:data:`TIME_PARTS`), added up across resumes.
    time_s: dict[str, float] = field(default_factory=dict)
    #: Env steps (or samples) per part: ``training`` and ``evaluation``, for throughputs.
    work: dict[str, int] = field(default_factory=dict)
    #: ``drift[i][j]``: mean KL(then || now) of task j's kept states after task i
    #: (:mod:`blip_rl.continual.drift`; None: not measured).
    drift: list[list[float | None]] = field(default_factory=list)
    #: ``changed[i][j]``: share of task j's kept states whose greedy action changed, after task i.
    changed: list[list[float | None]] = field(default_factory=list)
    #: Every evaluation of the run, periodic ones included: ``{"step", "task" (index of the task
    #: being learned), "raw", "normalized"}`` (lists over the tasks evaluated) and, where measured,
    #: ``"plasticity"`` (:mod:`blip_rl.continual.plasticity`). Forward transfer
    #: and the area under the accumulated normalized reward are computed from it.
    curve: list[dict[str, Any]] = field(default_factory=list)

    def add_row(self, raw: list[float], normalized: list[float | None], step: int, *,
                cut: list[int | None] | None = None, episodes: list[int | None] | None = None,
                drift: list[float | None] | None = None, changed: list[float | None] | None = None) -> None:
        pad = [None] * (len(self.tasks) - len(raw))
        self.raw.append(list(raw) + pad)
        self.normalized.append(list(normalized) + pad)
        self.steps.append(int(step))
        self.cut.append(list(cut if cut is not None else [None] * len(raw)) + pad)
        self.episodes.append(list(episodes if episodes is not None else [None] * len(raw)) + pad)
        self.drift.append(list(drift if drift is not None else [None] * len(raw)) + pad)
        self.changed.append(list(changed if changed is not None else [None] * len(raw)) + pad)

    def add_point(self, step: int, task: int, raw: list[float], normalized: list[float | None], *,
                  plasticity: dict[str, float] | None = None) -> None:
        """One evaluation on the learning curve: at ``step``, while task ``task`` (0-based) learns;
        ``plasticity``: the diagnostics measured with it (:mod:`blip_rl.continual.plasticity`)."""
        point: dict[str, Any] = {"step": int(step), "task": int(task), "raw": list(raw), "normalized": list(normalized)}
        if plasticity:
            point["plasticity"] = dict(plasticity)
        self.curve.append(point)

    def add_time(self, part: str, seconds: float, work: int = 0) -> None:
        """Add ``seconds`` (and ``work`` env steps or samples) to one part of the run."""
        self.time_s[part] = self.time_s.get(part, 0.0) + float(seconds)
        if work:
            self.work[part] = self.work.get(part, 0) + int(work)

    def time_split(self) -> str:
        """One line: where the run's wall time went (training, evaluation, Fisher/consolidation,
        checkpoints), with the throughput of training and evaluation."""
        total = sum(self.time_s.values())
        if total <= 0:
            return "time: nothing measured"
        names = {"consolidation": "Fisher/consolidation", "diagnostics": "plasticity metrics"}
        parts = []
        for part in TIME_PARTS:
            sec = self.time_s.get(part, 0.0)
            text = f"{names.get(part, part)} {_duration(sec)} ({100 * sec / total:.0f}%"
            if self.work.get(part) and sec > 0:
                text += f", {self.work[part] / sec:,.0f} steps/s"
            parts.append(text + ")")
        return f"time {_duration(total)}: " + ", ".join(parts)

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
            "cut": self.cut,
            "episodes": self.episodes,
            "time_s": self.time_s,
            "work": self.work,
            "drift": self.drift,
            "greedy_changed": self.changed,
            "curve": self.curve,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Results":
        rows = len(d["raw"])
        # Files of earlier versions have no cut/episodes/time entries.
        empty = [[None] * len(d["tasks"]) for _ in range(rows)]
        return cls(tasks=list(d["tasks"]), method=d["method"], raw=d["raw"], normalized=d["normalized"],
                   steps=list(d["steps"]), cut=d.get("cut") or [list(r) for r in empty],
                   episodes=d.get("episodes") or [list(r) for r in empty],
                   time_s=dict(d.get("time_s") or {}), work=dict(d.get("work") or {}),
                   drift=d.get("drift") or [list(r) for r in empty],
                   changed=d.get("greedy_changed") or [list(r) for r in empty], curve=list(d.get("curve") or []))

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["after_task", "step", "eval_task", "raw", "normalized", "episodes", "cut", "policy_drift",
                    "greedy_changed"])

        def cell(x):
            return "" if x is None else x

        for i, (rr, nn) in enumerate(zip(self.raw, self.normalized)):
            for j, task in enumerate(self.tasks[: i + 1]):
                w.writerow([self.tasks[i], self.steps[i], task, rr[j], cell(nn[j]), cell(self.episodes[i][j]),
                            cell(self.cut[i][j]), cell(self.drift[i][j]), cell(self.changed[i][j])])
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


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")
