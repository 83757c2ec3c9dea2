"""Continual-learning metrics as pure functions of the score matrix (paper eq. 10-11).

``A[i][j]`` is the score on task j after learning tasks 0..i (0-based here); entries with j > i
(tasks not learned yet) may be ``None`` or NaN and are ignored.
"""
from __future__ import annotations

import math
from typing import Sequence

Matrix = Sequence[Sequence[float | None]]

__all__ = ["acc", "bwt", "forgetting", "accumulated_normalized", "bootstrap_ci", "curve_auc", "task_auc",
           "accumulated_auc", "forward_transfer"]


def _final_row(matrix: Matrix) -> Sequence[float | None]:
    if not matrix:
        raise ValueError("the score matrix is empty: learn at least one task first")
    return matrix[-1]


def acc(matrix: Matrix) -> float:
    """ACC = mean_j A[T][j] over the tasks learned so far (eq. 10)."""
    row = _final_row(matrix)
    values = [float(v) for v in row[: len(matrix)] if v is not None and not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def bwt(matrix: Matrix) -> float:
    """BWT = 1/(T-1) sum_{j<T} (A[T][j] - A[j][j]) (eq. 11); NaN with a single task."""
    t = len(matrix)
    if t < 2:
        return math.nan
    row = _final_row(matrix)
    return sum(float(row[j]) - float(matrix[j][j]) for j in range(t - 1)) / (t - 1)


def forgetting(matrix: Matrix) -> list[float]:
    """Per task j < T: the best score ever reached minus the final score (>= 0 means forgotten)."""
    t = len(matrix)
    return [max(float(matrix[i][j]) for i in range(j, t)) - float(matrix[-1][j]) for j in range(t - 1)]


def accumulated_normalized(normalized_scores: Sequence[float | None]) -> float:
    """Sum of the normalized scores of every task learned so far (the paper's Fig. 4).

    Climbs toward the number of tasks for an agent that learns and keeps them all; stays near 1
    for one that forgets. Tasks without a normalization (``None``) count 0.
    """
    return float(sum(v for v in normalized_scores if v is not None))


def bootstrap_ci(values: Sequence[float], *, confidence: float = 0.95, n_boot: int = 10_000,
                 seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile-bootstrap confidence interval ``(mean, lo, hi)``.

    ``n_boot`` resamples of ``len(values)`` values with replacement (seeded: the same inputs give
    the same interval); ``lo``/``hi`` are the (1 - confidence)/2 and (1 + confidence)/2 quantiles
    of the resampled means (Efron's percentile method). One value gives ``(v, v, v)``.
    """
    import numpy as np

    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if x.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(x.mean()), float(lo), float(hi)


def curve_auc(steps: Sequence[float], values: Sequence[float], *, start: float | None = None,
              end: float | None = None) -> float | None:
    """Area under a piecewise-linear curve over ``[start, end]`` divided by its length: the time
    average of ``values``. Before the first point the curve is its first value, after the last
    its last (default interval: first to last point). No point gives None."""
    points = sorted((float(s), float(v)) for s, v in zip(steps, values) if v is not None and not math.isnan(v))
    if not points:
        return None
    lo = points[0][0] if start is None else float(start)
    hi = points[-1][0] if end is None else float(end)
    points = [(lo, points[0][1])] * (lo < points[0][0]) + points + [(hi, points[-1][1])] * (hi > points[-1][0])
    points = [(min(max(s, lo), hi), v) for s, v in points]
    if hi <= lo:
        return sum(v for _, v in points) / len(points)
    area = sum((s1 - s0) * (v0 + v1) / 2 for (s0, v0), (s1, v1) in zip(points, points[1:]))
    return area / (hi - lo)


def task_auc(curve: Sequence[dict], j: int, *, start: float | None = None, end: float | None = None) -> float | None:
    """AUC of task j's normalized score while task j learned (Continual World's AUC_i): its time
    average over ``[start, end]``, the task's own steps (before the first evaluation the score
    is taken as that evaluation's). None where the task has no normalized score.

    ``curve`` is ``results.json``'s ``curve`` (``{"step", "task", "raw", "normalized"}`` per
    evaluation). With evaluations only at task ends (``eval.every: 0``) it is task j's score
    right after learning it.
    """
    points = [(p["step"], p["normalized"][j]) for p in curve if p["task"] == j and j < len(p["normalized"])]
    return curve_auc([s for s, _ in points], [v for _, v in points], start=start, end=end)


def accumulated_auc(curve: Sequence[dict]) -> float | None:
    """Time average of the accumulated normalized reward over the whole run (every evaluation):
    the area under the paper's Fig. 4 curve divided by its span. Tasks without a normalized
    score count 0, as in :func:`accumulated_normalized`."""
    return curve_auc([p["step"] for p in curve], [accumulated_normalized(p["normalized"]) for p in curve])


def forward_transfer(auc: float | None, reference_auc: float | None) -> float | None:
    """Continual World's forward transfer of one task: ``(AUC - AUC_ref) / (1 - AUC_ref)``, where
    AUC_ref is the same task learned from scratch alone (scores in [0, 1]). Positive: learning
    the earlier tasks helped. None where either is missing or the reference is already perfect."""
    if auc is None or reference_auc is None or 1.0 - reference_auc <= 1e-9:
        return None
    return (auc - reference_auc) / (1.0 - reference_auc)


# -- plasticity (from the evaluation records' ``plasticity``, blip_rl/continual/plasticity.py) ------
def _last_plasticity(curve: Sequence[dict]) -> dict[str, float] | None:
    for point in reversed(curve):
        if point.get("plasticity"):
            return point["plasticity"]
    return None


def final_plasticity(curve: Sequence[dict], suffix: str) -> float | None:
    """At the run's last evaluation, the mean over the tasks evaluated of ``<task>/<suffix>``
    (``dormant``: share of dormant trunk units on the task's kept states; ``srank``: effective
    rank of the trunk's features on them). None where the run has no plasticity records."""
    last = _last_plasticity(curve)
    if last is None:
        return None
    values = [v for k, v in last.items() if k.count("/") == 1 and k.endswith("/" + suffix)]
    return sum(values) / len(values) if values else None


def final_layer_mean(curve: Sequence[dict], prefix: str) -> float | None:
    """At the run's last evaluation, the mean over the trunk's layers of ``<prefix>/<layer>``
    (``capacity_free``: BLIP's share of bits still free; ``capacity_full``: share of weights
    fully frozen; ``weight_magnitude``)."""
    last = _last_plasticity(curve)
    if last is None:
        return None
    values = [v for k, v in last.items() if k.startswith(prefix + "/")]
    return sum(values) / len(values) if values else None


def slope(values: Sequence[float | None]) -> float | None:
    """Least-squares slope of ``values`` against their index 0, 1, ... (Nones left out; None
    with fewer than two values): for the learning speed of each task against its place in the
    sequence, where a negative slope says later tasks learn worse."""
    points = [(i, float(v)) for i, v in enumerate(values) if v is not None and not math.isnan(v)]
    if len(points) < 2:
        return None
    mx = sum(i for i, _ in points) / len(points)
    my = sum(v for _, v in points) / len(points)
    var = sum((i - mx) ** 2 for i, _ in points)
    return sum((i - mx) * (v - my) for i, v in points) / var
