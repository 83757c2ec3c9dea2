"""The results of a continual run as records (a :class:`Row` of :class:`TaskScore` per task learned)
and their files (``results.json``, ``results.csv``)."""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .. import metrics
from ..errors import UserError
from ..io import atomic_write_json, atomic_write_text

__all__ = ["Results", "Row", "TaskScore", "Evaluation", "TIME_PARTS", "FORMAT"]

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


#: The version of ``results.json`` this code writes; :meth:`Results.from_dict` reads every
#: earlier one (1: seven parallel matrices ``raw``, ``normalized``, ... and no ``rows``).
FORMAT = 2


@dataclass
class TaskScore:
    """What one evaluation measured on one task. A new per-task quantity is one field here: it is
    written in ``rows`` and in its matrix view of ``results.json``, and read back, with no other change."""

    #: Mean raw score (game score, or accuracy).
    raw: float
    #: The score normalized by the task's random and reference scores (None: no reference).
    normalized: float | None = None
    #: Evaluation games played (None: n/a, e.g. classification).
    episodes: int | None = None
    #: Of those, games cut at the step limit instead of ending by themselves (None: n/a).
    cut: int | None = None
    #: Mean KL(then || now) of the task's kept states (:mod:`blip_rl.continual.drift`; None: not measured).
    drift: float | None = None
    #: Share of the task's kept states whose greedy action changed since the task was learned.
    greedy_changed: float | None = None


#: The per-task quantities, in the order of :class:`TaskScore`'s fields.
SCORE_FIELDS = tuple(f.name for f in fields(TaskScore))
#: ``results.csv`` column names that differ from the field's (kept as the TensorBoard tag says).
_CSV_NAMES = {"drift": "policy_drift"}


@dataclass
class Row:
    """The evaluation after task ``after`` (0-based) was learned: one score per task learned so far."""

    after: int
    step: int
    scores: list[TaskScore]

    def to_dict(self) -> dict[str, Any]:
        return {"after": self.after, "step": self.step, "scores": [asdict(s) for s in self.scores]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Row":
        known = set(SCORE_FIELDS)
        return cls(after=int(d["after"]), step=int(d["step"]),
                   scores=[TaskScore(**{k: v for k, v in s.items() if k in known}) for s in d["scores"]])


@dataclass
class Results:
    """Scores after each task: ``rows[i].scores[j]`` is task j as measured after task i was learned.

    ``raw[i][j]``, ``normalized[i][j]`` and the other matrices are views of the rows, padded with
    None for tasks not learned yet. ACC and BWT are computed on the normalized scores (raw
    accuracies for classification, scores mapped to [0, 1] for Atari).
    """

    tasks: list[str]
    method: str
    rows: list[Row] = field(default_factory=list)
    #: Wall seconds per part of the run (:data:`TIME_PARTS`), added up across resumes.
    time_s: dict[str, float] = field(default_factory=dict)
    #: Env steps (or samples) per part: ``training`` and ``evaluation``, for throughputs.
    work: dict[str, int] = field(default_factory=dict)
    #: Every evaluation of the run, periodic ones included: ``{"step", "task" (index of the task
    #: being learned), "raw", "normalized"}`` (lists over the tasks evaluated) and, where measured,
    #: ``"plasticity"`` (:mod:`blip_rl.continual.plasticity`). Forward transfer
    #: and the area under the accumulated normalized reward are computed from it.
    curve: list[dict[str, Any]] = field(default_factory=list)

    def matrix(self, name: str) -> list[list[Any]]:
        """``[i][j]``: :class:`TaskScore` field ``name`` of task j after task i (None where not learned)."""
        return [[getattr(sc, name) for sc in row.scores] + [None] * (len(self.tasks) - len(row.scores))
                for row in self.rows]

    raw = property(lambda self: self.matrix("raw"), doc="``raw[i][j]``: raw score of task j after task i.")
    normalized = property(lambda self: self.matrix("normalized"), doc="normalized score of task j after task i.")
    cut = property(lambda self: self.matrix("cut"), doc="games of task j cut at the step limit, after task i.")
    episodes = property(lambda self: self.matrix("episodes"), doc="games of task j played after task i.")
    drift = property(lambda self: self.matrix("drift"), doc="policy drift of task j after task i.")
    changed = property(lambda self: self.matrix("greedy_changed"), doc="greedy actions of task j changed.")
    steps = property(lambda self: [row.step for row in self.rows], doc="the env step of each row.")

    @property
    def tasks_learned(self) -> int:
        return len(self.rows)

    def add_row(self, raw: list[float], normalized: list[float | None], step: int, *,
                cut: list[int | None] | None = None, episodes: list[int | None] | None = None,
                drift: list[float | None] | None = None, changed: list[float | None] | None = None) -> None:
        """The evaluation after the next task: each list has one entry per task learned so far."""
        def column(values):
            return list(values) if values is not None else [None] * len(raw)
        self.rows.append(Row(after=len(self.rows), step=int(step), scores=[
            TaskScore(raw=r, normalized=n, episodes=e, cut=c, drift=d, greedy_changed=g)
            for r, n, e, c, d, g in zip(raw, normalized, column(episodes), column(cut), column(drift),
                                         column(changed))]))

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
        """The ``results.json`` payload. The rows are the record; the matrices beside them are views
        written for jq and pandas readers, never read back."""
        def clean(x):
            return None if x is None or (isinstance(x, float) and math.isnan(x)) else x
        out: dict[str, Any] = {
            "format": FORMAT,
            "method": self.method,
            "tasks": self.tasks,
            "tasks_learned": self.tasks_learned,
            "acc": clean(self.acc) if self.rows else None,
            "bwt": clean(self.bwt) if self.rows else None,
            "rows": [row.to_dict() for row in self.rows],
            "steps": self.steps,
        }
        out.update({name: self.matrix(name) for name in SCORE_FIELDS})
        out.update(time_s=self.time_s, work=self.work, curve=self.curve)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Results":
        """A ``results.json`` payload of any format up to :data:`FORMAT`."""
        version = d.get("format", 1)
        if not isinstance(version, int) or version > FORMAT:
            raise ValueError(f"results format {version!r} is newer than this blip-rl reads ({FORMAT}): "
                             "upgrade blip-rl")
        rows = [Row.from_dict(r) for r in d["rows"]] if version >= 2 else _rows_of_format_1(d)
        return cls(tasks=list(d["tasks"]), method=d["method"], rows=rows, time_s=dict(d.get("time_s") or {}),
                   work=dict(d.get("work") or {}), curve=list(d.get("curve") or []))

    @classmethod
    def load(cls, path: str | Path) -> "Results":
        """``results.json`` of a run dir (or the file itself); a :class:`~blip_rl.errors.UserError`
        that says what to do when it is missing or unreadable."""
        path = Path(path)
        file = path / "results.json" if path.is_dir() else path
        try:
            return cls.from_dict(json.loads(file.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise UserError(f"{file} does not exist: no task of this run has finished yet") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{file} is unreadable ({exc}); it is written atomically, so it was changed by hand: "
                            "restore it or start a new run") from None

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["after_task", "step", "eval_task", *(_CSV_NAMES.get(name, name) for name in SCORE_FIELDS)])
        for row in self.rows:
            for task, sc in zip(self.tasks, row.scores):
                w.writerow([self.tasks[row.after], row.step, task,
                            *("" if getattr(sc, name) is None else getattr(sc, name) for name in SCORE_FIELDS)])
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


def _rows_of_format_1(d: dict[str, Any]) -> list[Row]:
    """Rows of a format-1 file: parallel matrices padded with None for tasks not learned (``cut``,
    ``episodes``, ``drift`` and ``greedy_changed`` are absent from the earliest files)."""
    def entry(name: str, i: int, j: int) -> Any:
        matrix = d.get(name) or []
        return matrix[i][j] if i < len(matrix) and j < len(matrix[i]) else None
    return [Row(after=i, step=int(step),
                scores=[TaskScore(**{name: entry(name, i, j) for name in SCORE_FIELDS}) for j in range(i + 1)])
            for i, step in enumerate(d["steps"])]


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")
