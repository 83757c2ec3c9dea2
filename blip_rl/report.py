"""``blip-rl report``: the paper's figures and a results table from finished run dirs.

Reads run dirs only (``config.yaml``, ``results.json``, the ``tb/`` event files and the per-game
checkpoints) and writes, into a new ``--out`` dir:

* ``accumulated_normalized.png``: accumulated normalized reward against env steps, one line per
  method (mean over seeds, band min-max over seeds); the paper's Fig. 4.
* ``per_game.png``: one panel per game, its normalized evaluation score from the step its
  training starts to the end of the sequence; the paper's Fig. 3.
* ``bits_<method>.png``: frozen bits of each layer's weights (rows) after each game (columns),
  from the checkpoints ``<k>_<game>.pt`` of the method's lowest seed; the paper's Fig. 2. Only
  for methods that froze bits: the others are named in ``table.md`` (``no_frozen_bits``).
* ``plasticity.png``: BLIP's share of bits still free and the share of dormant trunk units
  against the tasks learned (mean over seeds), where the runs recorded plasticity.
* ``table.md`` / ``summary.json`` / ``table.tex``: every metric of :data:`METRICS` (retention:
  ACC, BWT, forgetting, ...; plasticity: dormant units, effective rank, BLIP capacity left, the
  slope of learning speed against task index) per method, mean, sample standard deviation and
  95% bootstrap CI over seeds (from each ``results.json``).

Runs are grouped by ``method`` and told apart by ``seed`` (both from ``config.yaml``). Figures
need matplotlib (``pip install 'blip-rl[report]'``); it is imported only here, with the Agg
canvas, so that a report never opens a window or changes the caller's pyplot backend.
"""
from __future__ import annotations

from .errors import MissingExtraError, UserError, require

import argparse
import sys
import math
import re
import shlex
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .continual import Results, checkpoint_name
from .io import atomic_write, atomic_write_json, atomic_write_text
from .logging import KEYS
from .metrics import (accumulated_auc, accumulated_normalized, final_layer_mean, final_plasticity, forgetting,
                      forward_transfer, slope, task_auc)

__all__ = ["register", "make_report", "load_run", "RunData", "MissingDependencyError", "format_stat", "Metric",
           "METRICS"]

#: Line colours of the methods this package knows; other methods take the next free colour.
_COLORS = {"blip": "tab:red", "ewc": "tab:green", "ft": "tab:blue", "ft-fix": "tab:orange"}
_DPI = 100


#: An optional dependency is not installed (a user error: one line, exit 2); the name of earlier versions.
MissingDependencyError = MissingExtraError


@dataclass
class RunData:
    """One finished run dir, validated.

    :param path: the run dir.
    :param method: ``config.yaml``'s ``method``.
    :param seed: ``config.yaml``'s ``seed``.
    :param games: the games in the order they were learned.
    :param results: the score matrix of ``results.json``.
    """

    path: Path
    method: str
    seed: int
    games: list[str]
    results: Results
    #: ``config.yaml`` as written by the run.
    config: dict | None = None

    @property
    def final_accumulated(self) -> float:
        """Accumulated normalized reward after the last game: the sum of the last row (paper Fig. 4)."""
        return accumulated_normalized(self.results.normalized[-1])


# -- reading run dirs ---------------------------------------------------------------------------
def load_run(path: str | Path) -> RunData:
    """Read and check one finished run dir.

    :raises ValueError: not a run dir, an unfinished run, or unreadable files (the message says
        what to do).
    """
    import yaml

    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path} does not exist or is not a directory; give run dirs made by "
                         "`blip-rl train --run-dir DIR`")
    if not (path / "config.yaml").is_file():
        inside = sorted(p.parent.name for p in path.glob("*/config.yaml"))
        hint = (f"; it holds run dirs ({', '.join(inside[:4])}{', ...' if len(inside) > 4 else ''}): "
                f"give them, e.g. {path}/*") if inside else ""
        raise UserError(f"{path} is not a blip-rl run dir (no config.yaml){hint}")
    try:
        config = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))
        # Atari runs name their games, classification runs their tasks.
        tasks = config["games"] if "games" in config else config["tasks"]
        method, seed, games = str(config["method"]), int(config["seed"]), [str(g) for g in tasks]
    except (yaml.YAMLError, TypeError, KeyError, ValueError) as exc:
        raise UserError(f"{path / 'config.yaml'} is unreadable or lacks method/seed/games ({exc}); "
                         "it was written by blip-rl, so it was changed by hand: restore it") from None
    command = "train" if "games" in config else "classify"
    resume = f"resume it with `blip-rl {command} --resume {shlex.quote(str(path))}`, or leave it out of the report"
    if not (path / "results.json").is_file():
        raise UserError(f"{path} is an unfinished run (no results.json: no game finished yet); {resume}")
    results = Results.load(path)
    if results.tasks != games and "games" in config:
        from .envs.family import task_names

        games = task_names(games)  # a task's spelling in config.yaml -> its name in results.json
    if results.tasks != games:
        raise UserError(f"{path}: results.json is for games {results.tasks} but config.yaml says {games}")
    if len(results.raw) < len(games):
        raise UserError(f"{path} is an unfinished run ({len(results.raw)} of {len(games)} games learned); {resume}")
    # Grouped by the method's own name (results.json), not how it was asked for: a plugin given
    # as package.module:Class is "its name" in tables and file names.
    return RunData(path=path, method=results.method or method, seed=seed, games=games, results=results, config=config)


def method_options_of(run: RunData) -> dict[str, Any]:
    """The options ``run``'s method ran with (``blip``'s consolidation, ``ewc``'s lambda, ...), as
    its config resolves them; a plugin that does not import here: the options as written."""
    if "games" in run.config:
        from .config import load_config

        try:
            return load_config(run.path / "config.yaml").method_kwargs()
        except UserError:
            pass
    methods = run.config.get("methods") or {}
    return dict((methods.get(run.config.get("method")) if isinstance(methods, dict) else None)
                or run.config.get("method_options") or {})


def _labels(runs: Sequence[RunData]) -> list[str]:
    """Each run's row in the report: its method, and where runs of one method ran with different
    options, the options that differ (``blip (consolidation=overwrite)``)."""
    options = [method_options_of(r) for r in runs]
    labels = []
    for run, opts in zip(runs, options):
        same = [o for r, o in zip(runs, options) if r.method == run.method]
        differ = sorted(k for k in set().union(*same) if len({repr(o.get(k)) for o in same}) > 1)
        labels.append(run.method + (f" ({', '.join(f'{k}={opts.get(k)}' for k in differ)})" if differ else ""))
    return labels


def _file_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_")


def _group(runs: Sequence[RunData]) -> dict[str, list[RunData]]:
    """Runs by method and options (known methods in the registry's order, then others by name),
    seeds sorted; runs of one method with different options are rows of their own."""
    from .core import METHODS

    games = runs[0].games
    for run in runs[1:]:
        if run.games != games:
            raise UserError(f"the runs learned different game sequences ({runs[0].path}: {','.join(games)}; "
                             f"{run.path}: {','.join(run.games)}); a report compares runs of one sequence: "
                             "make one report per sequence")
    groups: dict[str, list[RunData]] = {}
    for run, label in zip(runs, _labels(runs)):
        group = groups.setdefault(label, [])
        twin = next((r for r in group if r.seed == run.seed), None)
        if twin is not None:
            raise UserError(f"{twin.path} and {run.path} are both {label} with seed {run.seed}; "
                             "give each (method, options, seed) once")
        group.append(run)
    rank = {m: i for i, m in enumerate(METHODS)}
    order = sorted(groups, key=lambda g: (rank.get(groups[g][0].method, len(rank)), groups[g][0].method, g))
    return {g: sorted(groups[g], key=lambda r: r.seed) for g in order}


Curve = tuple[np.ndarray, np.ndarray]


def _tb_curves(tb_dir: Path, tags: Sequence[str]) -> dict[str, Curve]:
    """Scalar curves ``tag -> (steps, values)`` from a run's event files (all files of the dir, in
    order, so that a resumed run's purge of events past its checkpoint is honoured)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not tb_dir.is_dir():
        return {}
    guidance = {"scalars": 0, "images": 1, "tensors": 1, "histograms": 1, "compressedHistograms": 1, "audio": 1}
    import logging

    # The purge of a resumed run's events past its checkpoint is what blip-rl asked for: not news.
    logging.getLogger("tensorboard").setLevel(logging.ERROR)
    ea = EventAccumulator(str(tb_dir), size_guidance=guidance)
    ea.Reload()
    available = set(ea.Tags().get("scalars", []))
    curves = {}
    for tag in tags:
        if tag not in available:
            continue
        # After each game the scheduler evaluates once more at the same step, after consolidation
        # (the row of results.json): the last value logged at a step is the one to keep.
        last: dict[int, float] = {}
        for event in ea.Scalars(tag):
            last[int(event.step)] = float(event.value)
        steps = sorted(last)
        if steps:  # a tag whose events were all purged falls back to results.json
            curves[tag] = (np.asarray(steps, dtype=np.float64), np.asarray([last[s] for s in steps]))
    return curves


def _results_curve(run: RunData, tag: str) -> Curve:
    """A curve from results.json alone, for runs without event files: every evaluation of its
    curve records (each learned game's score at each ``eval.every``), else one point per game."""
    r = run.results
    records = [c for c in (r.curve or []) if isinstance(c, dict) and c.get("normalized") is not None]
    if records:
        steps = np.asarray([c["step"] for c in records], dtype=np.float64)
        rows_norm = [c["normalized"] for c in records]
        rows_raw = [c["raw"] for c in records]
    else:
        steps = np.asarray(r.steps, dtype=np.float64)
        rows_norm, rows_raw = r.normalized, r.raw
    if tag == KEYS["accumulated"]:
        return steps, np.asarray([accumulated_normalized(row) for row in rows_norm])
    for j, game in enumerate(run.games):
        for key, matrix in ((KEYS["eval_normalized"], rows_norm), (KEYS["eval_score"], rows_raw)):
            if tag == key.format(task=game):
                keep = [i for i, row in enumerate(matrix) if len(row) > j and row[j] is not None]
                return steps[keep], np.asarray([matrix[i][j] for i in keep], dtype=np.float64)
    raise KeyError(tag)


def _run_curves(run: RunData, tags: Sequence[str]) -> tuple[dict[str, Curve], str]:
    """The curves ``tags`` of one run, from its event files or else results.json, and their source."""
    curves = _tb_curves(run.path / "tb", tags)
    source = "tensorboard" if len(curves) == len(tags) else "results.json" if not curves else "tensorboard+results.json"
    return {t: curves[t] if t in curves else _results_curve(run, t) for t in tags}, source


def _band(curves: Sequence[Curve]) -> dict[str, list[float]]:
    """Mean, min and max over seeds on the union of their steps; each seed is interpolated
    linearly inside its own step range and left out beyond it."""
    xs = np.unique(np.concatenate([x for x, _ in curves]))
    ys = np.full((len(curves), len(xs)), np.nan)
    for i, (x, y) in enumerate(curves):
        inside = (xs >= x[0]) & (xs <= x[-1])
        ys[i, inside] = np.interp(xs[inside], x, y)
    return {"steps": xs.astype(np.int64).tolist(), "mean": np.nanmean(ys, 0).tolist(), "min": np.nanmin(ys, 0).tolist(),
            "max": np.nanmax(ys, 0).tolist(), "n": np.isfinite(ys).sum(0).tolist()}


# -- statistics and the table ------------------------------------------------------------------
def _clean(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _stats(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean, sample standard deviation (ddof 1; None with one value) and the 95% percentile
    bootstrap confidence interval of the mean (:func:`blip_rl.metrics.bootstrap_ci`; None with
    one value) of the finite values."""
    from .metrics import bootstrap_ci

    vals = [float(v) for v in values if _clean(v) is not None]
    ci = list(bootstrap_ci(vals)[1:]) if len(vals) > 1 else None
    return {"values": [_clean(v) for v in values], "mean": statistics.fmean(vals) if vals else None,
            "std": statistics.stdev(vals) if len(vals) > 1 else None, "ci95": ci}


def format_ci(stat: dict[str, Any], digits: int = 3) -> str:
    """``[lo, hi]`` with 3 decimals, or ``digits`` (``n/a`` with fewer than two seeds)."""
    return f"[{stat['ci95'][0]:.{digits}f}, {stat['ci95'][1]:.{digits}f}]" if stat.get("ci95") else "n/a"


def format_stat(stat: dict[str, Any], digits: int = 3) -> str:
    """``mean ± std`` with 3 decimals as in ``table.md`` (``n/a`` when undefined)."""
    if stat["mean"] is None:
        return "n/a"
    return f"{stat['mean']:.{digits}f}" + (f" ± {stat['std']:.{digits}f}" if stat["std"] is not None else "")


def _final_drift(run: RunData, key: str) -> float | None:
    """Mean over the earlier tasks of their drift after the last task (None: not measured)."""
    rows = run.results.drift if key == "drift" else run.results.changed
    if not rows or len(run.games) < 2:
        return None
    values = [v for v in rows[-1][: len(run.games) - 1] if v is not None]
    return statistics.fmean(values) if values else None


#: What a reference run must share with the runs it is compared with (config keys; a key that
#: neither has is ignored): the same steps per game, evaluation schedule and normalization.
_REFERENCE_KEYS = ("steps_per_game", "eval.every", "eval.episodes", "normalization", "epochs")


def _config_value(config: dict | None, key: str) -> Any:
    value: Any = config or {}
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def check_references(run: RunData, references: Sequence[RunData]) -> None:
    """Refuse references that were not trained and evaluated like ``run`` (the AUCs would not compare)."""
    for ref in references:
        diff = [f"{k}: {_config_value(ref.config, k)!r} vs {_config_value(run.config, k)!r}" for k in _REFERENCE_KEYS
                if _config_value(ref.config, k) != _config_value(run.config, k)]
        if diff:
            raise UserError(f"reference {ref.path} was not trained like {run.path} ({'; '.join(diff)}); forward "
                            "transfer compares learning curves of the same length and evaluation schedule: train "
                            "the reference with the same settings")


def reference_aucs(reference_dirs: Sequence[str | Path], like: RunData | None = None) -> dict[str, list[float]]:
    """Game name -> the AUC of that game in each reference run, for forward transfer. A
    reference learned the game from scratch: only its first game counts (``blip-rl train
    --games G``, with the same steps per game and ``eval.every`` as the runs compared)."""
    out: dict[str, list[float]] = {}
    refs = [load_run(path) for path in reference_dirs]
    if like is not None:
        check_references(like, refs)
    for run in refs:
        path = run.path
        if not run.results.curve:
            raise UserError(f"reference {path} has no learning curve in results.json (an older blip-rl wrote it); "
                            "train it again with this version to use it as a reference")
        auc = _task_auc(run, 0)
        if auc is not None:
            out.setdefault(run.games[0], []).append(auc)
    return out


def _task_auc(run: RunData, j: int) -> float | None:
    """AUC of game j over its own steps in ``run`` (from the end of game j-1 to the end of game j)."""
    steps = run.results.steps
    return task_auc(run.results.curve, j, start=steps[j - 1] if j > 0 else 0, end=steps[j])


def _forward_transfer(run: RunData, refs: dict[str, list[float]]) -> dict[str, float | None]:
    """Forward transfer of each task of ``run`` against the mean reference AUC of that task."""
    out = {}
    for j, task in enumerate(run.games):
        ref = statistics.fmean(refs[task]) if task in refs else None
        out[task] = forward_transfer(_task_auc(run, j), ref)
    return out


def _how(runtime: dict, *, threads: bool = True) -> str:
    n = runtime.get("torch_threads") if threads else None
    return (f"{str(runtime.get('device', '?')).split(':')[0]} {runtime['precision']}"
            + (f", {n} thread{'s' if n != 1 else ''}" if n else ""))


def trained_with(run: RunData, *, threads: bool = True) -> str:
    """How a run trained, as its ``config.yaml`` records it: device, precision and torch threads,
    e.g. ``cpu fp32, 1 thread``; a run resumed another way, each way joined by ``then``; a run of an
    older blip-rl that recorded no runtime: ``not recorded`` (classification runs: fp32 always)."""
    config = run.config or {}
    runtime = config.get("runtime") or {}
    if runtime.get("precision"):
        ways = [_how(runtime, threads=threads)]
        for later in config.get("runtime_resumed") or []:
            if later.get("precision") and _how(later, threads=threads) != ways[-1]:
                ways.append(_how(later, threads=threads))
        return " then ".join(ways)
    if "benchmark" in config:  # a classification run of an older blip-rl: fp32 always, threads not recorded
        return f"{str(config.get('device', '?')).split(':')[0]} fp32"
    return "not recorded"


def mixed_runtimes(groups: dict[str, list[RunData]]) -> str | None:
    """One line when the runs compared trained with different devices, precisions or threads."""
    runs = [r for rs in groups.values() for r in rs]
    # Threads are compared only where every run recorded them (older classification runs did not).
    threads = all(", " in trained_with(r) for r in runs)
    seen: dict[str, list[str]] = {}
    for method, group in groups.items():
        for run in group:
            seen.setdefault(trained_with(run, threads=threads), []).append(f"{method} seed {run.seed}")
    if len(seen) < 2:
        return None
    parts = "; ".join(f"{how}: {', '.join(who[:3])}{', ...' if len(who) > 3 else ''}" for how, who in seen.items())
    return (f"the runs compared trained differently ({parts}): differences between them may be the machine's, "
            "not the methods'; rerun them with the same --device, --precision and --threads (a sweep does)")


def _mean_forgetting(run: RunData) -> float | None:
    """Mean over earlier tasks of the best score ever reached minus the final one."""
    return statistics.fmean(forgetting(run.results._scored())) if len(run.games) > 1 else None


def _learning_speeds(run: RunData) -> list[float | None]:
    """Each task's learning speed: the time average of its normalized score over its own steps."""
    return [_task_auc(run, j) for j in range(len(run.games))]


@dataclass(frozen=True)
class Metric:
    """One number per run, summarized over seeds (mean, sample sd, 95% bootstrap CI) in
    ``summary.json``, a column of its group's table (``table.md``), and where asked a column of
    ``table.tex`` and a panel of ``metrics.png``. Adding a metric is one entry in :data:`METRICS`
    and a pure function (in :mod:`blip_rl.metrics`) of a run's results."""

    key: str  #: its name in summary.json
    label: str  #: its column header and panel title
    of: Callable[[RunData], float | None]  #: its value for one run (None: not defined for it)
    digits: int = 3
    better: str = "higher"  #: higher | lower | none (the table says which way is better)
    group: str = "retention"  #: retention (the main table) | plasticity (the plasticity table)
    ci: bool = False  #: a 95% CI column beside its mean in the table
    panel: bool = False  #: a panel in metrics.png
    latex: bool = False  #: a column of table.tex


#: Every metric of a report, in table order.
METRICS: list[Metric] = [
    Metric("acc", "ACC", lambda r: r.results.acc, ci=True, panel=True, latex=True),
    Metric("bwt", "BWT", lambda r: r.results.bwt if len(r.games) > 1 else None, ci=True, panel=True, latex=True),
    Metric("accumulated_normalized", "accumulated normalized", lambda r: r.final_accumulated),
    Metric("forgetting", "forgetting", _mean_forgetting, better="lower", ci=True, panel=True, latex=True),
    # Time average of the accumulated normalized reward over the run (area under Fig. 4).
    Metric("accumulated_auc", "accumulated AUC", lambda r: accumulated_auc(r.results.curve), ci=True),
    # After the last task, mean over the earlier tasks of KL(then || now) on their kept states,
    # and of the share of those states whose greedy action changed.
    Metric("policy_drift", "policy drift", lambda r: _final_drift(r, "drift"), digits=4, better="lower", ci=True),
    Metric("greedy_changed", "greedy changed", lambda r: _final_drift(r, "changed"), better="lower"),
    Metric("dormant", "dormant units", lambda r: final_plasticity(r.results.curve, "dormant"), better="lower",
           group="plasticity", ci=True, panel=True),
    Metric("srank", "effective rank", lambda r: final_plasticity(r.results.curve, "srank"), digits=1,
           group="plasticity", ci=True),
    Metric("capacity_free", "BLIP bits free", lambda r: final_layer_mean(r.results.curve, "capacity_free"),
           group="plasticity", ci=True, panel=True),
    Metric("capacity_full", "weights fully frozen", lambda r: final_layer_mean(r.results.curve, "capacity_full"),
           better="lower", group="plasticity"),
    Metric("learning_speed_slope", "learning speed slope", lambda r: slope(_learning_speeds(r)),
           group="plasticity", ci=True, panel=True),
]

#: What each group's table says its metrics are.
_GROUP_TEXT = {
    "retention": "",
    "plasticity": (
        "Plasticity, at each run's last evaluation: dormant units, the share of trunk units whose "
        "activation on an evaluated game's kept states, divided by their layer's mean, is at most "
        "tau (ReDo's score; 0.025, or the run's redo tau), mean over the games; effective rank, "
        "Kumar et al.'s srank (delta 0.01) of the trunk's features on those states; BLIP bits free, "
        "the mean share of each trunk weight's N bits not frozen (1 where no bit is frozen, so for "
        "every method but blip); weights fully frozen, the share with all N bits frozen; learning "
        "speed slope, the least-squares slope against task index of each game's learning speed "
        "(the time average of its normalized score over its own steps): negative where later games "
        "learn worse. Learning speed per task index: summary.json's learning_speed_per_task."),
}


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    """Options as summary.json holds them: plain values kept, anything else as its text."""
    return {k: v if isinstance(v, (bool, int, float, str, type(None))) else str(v) for k, v in sorted(options.items())}


def _summary(groups: dict[str, list[RunData]], refs: dict[str, list[float]] | None = None) -> dict[str, Any]:
    methods = {}
    for method, runs in groups.items():
        transfers = [_forward_transfer(r, refs) for r in runs] if refs else []
        methods[method] = {
            "method": runs[0].method,
            "options": _jsonable(method_options_of(runs[0])),
            "seeds": [r.seed for r in runs],
            "trained_with": sorted({trained_with(r) for r in runs}),
            "runs": [str(r.path) for r in runs],
            **{m.key: _stats([m.of(r) for r in runs]) for m in METRICS},
        }
        speeds = [_learning_speeds(r) for r in runs]
        methods[method]["learning_speed_per_task"] = [_stats([s[j] for s in speeds]) for j in range(len(runs[0].games))]
        if refs:
            per_task = {t: _stats([ft[t] for ft in transfers]) for t in runs[0].games}
            means = [statistics.fmean([v for v in ft.values() if v is not None])
                     if any(v is not None for v in ft.values()) else None for ft in transfers]
            methods[method]["forward_transfer"] = _stats(means)
            methods[method]["forward_transfer_per_task"] = per_task
    first = next(iter(groups.values()))[0]
    summary = {"games": first.games, "statistic": "mean and sample standard deviation (ddof 1) over seeds; ci95: "
               "95% percentile bootstrap interval of the mean (10,000 resamples, seed 0)", "methods": methods}
    mixed = mixed_runtimes(groups)
    if mixed:
        summary["warnings"] = [mixed]
    if refs:
        summary["reference_auc"] = {t: statistics.fmean(v) for t, v in refs.items()}
        summary["reference_runs"] = {t: len(v) for t, v in refs.items()}
    return summary


def _metric_table(summary: dict[str, Any], group: str,
                  extra: Sequence[tuple[str, str, bool]] = ()) -> list[str]:
    """The Markdown rows of one group's metrics: per metric its mean ± sd and, for CI metrics, the
    95% interval; ``extra``: (label, key, with CI) columns computed elsewhere (forward transfer)."""
    columns = [(m.label + ("" if m.better == "none" else " ↑" if m.better == "higher" else " ↓"), m.key, m.ci,
                m.digits) for m in METRICS if m.group == group]
    columns += [(label, key, ci, 3) for label, key, ci in extra]
    header = ["method", "seeds"]
    for label, _key, ci, _digits in columns:
        header += [label] + ([f"{label.rstrip(' ↑↓')} 95% CI"] if ci else [])
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, m in summary["methods"].items():
        cells = [method, ", ".join(map(str, m["seeds"]))]
        for _label, key, ci, digits in columns:
            cells.append(format_stat(m[key], digits))
            if ci:
                cells.append(format_ci(m[key], digits))
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _table(summary: dict[str, Any]) -> str:
    transfer = "reference_auc" in summary
    lines = [
        "# blip-rl report",
        "",
        f"Games, in the order learned: {', '.join(summary['games'])}. Scores are normalized per game "
        "(0 = random policy, 1 = single-task PPO reference). ACC: mean final score over all games; "
        "BWT: mean change of each earlier game's score from right after learning it to the end; "
        "accumulated normalized: sum of the final scores (at most the number of games). "
        "Forgetting: mean over earlier games of the best score reached minus the final one. "
        "Accumulated AUC: time average of the accumulated normalized reward over the run (every "
        "evaluation). Policy drift: after the last game, mean over the earlier games of KL(policy when "
        "the game ended || final policy) on states kept from that game; greedy changed: the share of "
        "those states whose greedy action changed. "
        "Mean ± sample standard deviation over seeds; [lo, hi]: 95% bootstrap confidence interval of the "
        "mean over seeds; ↑ / ↓: higher / lower is better.",
        "",
        *_metric_table(summary, "retention", extra=[("forward transfer", "forward_transfer", True)] if transfer else []),
    ]
    lines += ["", "Trained with (device, precision, torch threads): " + "; ".join(
        f"{method} {' / '.join(m['trained_with'])}" for method, m in summary["methods"].items()) + "."]
    for warning in summary.get("warnings", []):
        lines += ["", f"**Warning:** {warning}."]
    if any(summary["methods"][m].get(k.key, {}).get("mean") is not None for m in summary["methods"]
           for k in METRICS if k.group == "plasticity"):
        lines += ["", "## Plasticity", "", _GROUP_TEXT["plasticity"], "", *_metric_table(summary, "plasticity")]
    if transfer:
        refs = ", ".join(f"{t} {v:.3f} ({summary['reference_runs'][t]} runs)" for t, v in summary["reference_auc"].items())
        lines += ["", "Forward transfer (Continual World): per game (AUC - AUC_ref) / (1 - AUC_ref), where AUC is "
                  "the time average of the game's normalized score over the evaluations while it learned, and "
                  f"AUC_ref the same in the reference runs that learned it from scratch ({refs}); mean over the "
                  "games that have a reference."]
    return "\n".join(lines) + "\n"


def _latex(summary: dict[str, Any]) -> str:
    """The table for a paper: mean and 95% bootstrap CI of ACC, BWT and forgetting (booktabs)."""
    def cell(stat: dict[str, Any]) -> str:
        if stat["mean"] is None:
            return "--"
        ci = f" {{\\scriptsize [{stat['ci95'][0]:.3f}, {stat['ci95'][1]:.3f}]}}" if stat.get("ci95") else ""
        return f"{stat['mean']:.3f}{ci}"

    transfer = "reference_auc" in summary
    cols = [(m.label, m.key) for m in METRICS if m.latex] + ([("FT", "forward_transfer")] if transfer else [])
    rows = [f"{method} & {len(m['seeds'])} & " + " & ".join(cell(m[key]) for _, key in cols) + " \\\\"
            for method, m in summary["methods"].items()]
    return "\n".join([
        "% blip-rl report: mean [95% bootstrap CI] over seeds; needs \\usepackage{booktabs}",
        "\\begin{tabular}{lr" + "c" * len(cols) + "}", "\\toprule",
        "method & seeds & " + " & ".join(label for label, _ in cols) + " \\\\", "\\midrule",
        *rows, "\\bottomrule", "\\end{tabular}", ""])


# -- figures ----------------------------------------------------------------------------------
def _require_matplotlib():
    require("matplotlib", extra="report", purpose="blip-rl report (its figures)")
    from matplotlib.figure import Figure

    return Figure


#: Colours for rows beyond the fixed ones: matplotlib's tab20, the saturated shades first.
_PALETTE = ("tab:purple", "tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan", "#9edae5", "#c5b0d5",
            "#ff9896", "#98df8a", "#ffbb78", "#aec7e8", "#c49c94", "#f7b6d2", "#dbdb8d", "#c7c7c7")


def _colors(methods: Sequence[str]) -> dict[str, str]:
    """A colour per row, none shared: a method's own (blip red, ewc green, ...) where no other row
    took it (``blip (consolidation=keep)`` is blip's), else the next unused one of the palette."""
    used: set[str] = set()
    out = {}
    spare = iter(_PALETTE)
    for m in methods:
        color = _COLORS.get(m) or _COLORS.get(m.split(" (")[0])
        if color is None or color in used:
            color = next((c for c in spare if c not in used), None) or "black"
        used.add(color)
        out[m] = color
    return out


def _save(fig, path: Path) -> None:
    # Figure.savefig renders with the Agg canvas without pyplot (no window, no global backend).
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=_DPI))


def _boundaries(runs: Sequence[RunData]) -> np.ndarray:
    """Mean env step at the end of each game over all runs (identical for runs of one config)."""
    return np.mean([r.results.steps for r in runs], axis=0)


def _mark_games(ax, ends: np.ndarray, games: Sequence[str], *, labels: bool) -> None:
    for end in ends[:-1]:
        ax.axvline(end, color="0.7", lw=0.8, ls="--", zorder=0)
    if labels:
        starts = np.concatenate([[0.0], ends[:-1]])
        for game, a, b in zip(games, starts, ends):
            ax.text((a + b) / 2, 1.0, game, transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                    fontsize=8, color="0.35")


def _plot_band(ax, band: dict[str, list[float]], color: str, label: str) -> None:
    x = np.asarray(band["steps"])
    ax.plot(x, band["mean"], color=color, lw=1.6, label=label, marker="." if len(x) < 30 else None)
    ax.fill_between(x, band["min"], band["max"], color=color, alpha=0.2, lw=0)


#: Rows a legend may hold inside a panel; a study with more (every method: 13) gets one beside the panels.
_LEGEND_INSIDE = 6


def _legend(fig, ax, n_rows: int, *, fontsize: int = 7, title: str | None = None, loc: str = "best") -> None:
    """The legend of ``ax``'s lines: inside it for a few rows, beside the figure for many."""
    if n_rows <= _LEGEND_INSIDE:
        ax.legend(fontsize=fontsize, loc=loc, title=title, title_fontsize=fontsize)
    else:
        handles, labels = ax.get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right upper", fontsize=fontsize, title=title,
                   title_fontsize=fontsize)


def _figure_accumulated(Figure, bands: dict[str, dict], colors, groups, ends, games) -> Any:
    fig = Figure(figsize=(7.0, 4.2), layout="constrained")
    ax = fig.subplots()
    for method, band in bands.items():
        _plot_band(ax, band, colors[method], f"{method} ({len(groups[method])} seeds)")
    _mark_games(ax, ends, games, labels=True)
    ax.set_xlim(0, ends[-1])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("env steps (all games)")
    ax.set_ylabel("accumulated normalized reward")
    ax.grid(alpha=0.3)
    _legend(fig, ax, len(bands), fontsize=8, title="mean, band: min-max over seeds", loc="upper left")
    return fig


#: The metrics of ``metrics.png``: summary key and axis title.
def _metric_panels() -> list[tuple[str, str]]:
    return [(m.key, m.label) for m in METRICS if m.panel] + [("forward_transfer", "forward transfer")]


def _figure_metrics(Figure, summary: dict[str, Any], colors) -> Any:
    """One panel per metric: each method's mean over seeds with its 95% bootstrap interval."""
    panels = [(k, t) for k, t in _metric_panels()
              if any(m.get(k, {}).get("mean") is not None for m in summary["methods"].values())]
    fig = Figure(figsize=(2.6 * len(panels), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    methods = list(summary["methods"])
    for ax, (key, title) in zip(axes, panels):
        for i, method in enumerate(methods):
            stat = summary["methods"][method].get(key)
            if not stat or stat["mean"] is None:
                continue
            lo, hi = stat["ci95"] if stat.get("ci95") else (stat["mean"], stat["mean"])
            ax.errorbar(i, stat["mean"], yerr=[[stat["mean"] - lo], [hi - stat["mean"]]], fmt="o",
                        color=colors[method], capsize=3)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("mean over seeds, 95% bootstrap interval", fontsize=9)
    return fig


def _after_each_task(run: RunData) -> list[dict[str, float] | None]:
    """The plasticity record of the evaluation that ended each task (the last one while it learned)."""
    out = []
    for k in range(len(run.games)):
        points = [p for p in run.results.curve if p["task"] == k and p.get("plasticity")]
        out.append(points[-1]["plasticity"] if points else None)
    return out


def _has_plasticity(runs: Sequence[RunData]) -> bool:
    return any(p.get("plasticity") for r in runs for p in r.results.curve)


def _figure_plasticity(Figure, groups: dict[str, list[RunData]], colors, games: Sequence[str]) -> Any:
    """BLIP's share of bits free and the share of dormant trunk units after each task, mean over seeds."""
    def mean(values):
        values = [v for v in values if v is not None]
        return statistics.fmean(values) if values else None

    panels = (("capacity_free", "trunk bits still free (BLIP capacity left)"),
              ("dormant", "dormant trunk units (mean over games learned)"))
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    axes = fig.subplots(1, 2)
    x = np.arange(1, len(games) + 1)
    for ax, (what, title) in zip(axes, panels):
        for method, runs in groups.items():
            per_run = []
            for run in runs:
                rows = _after_each_task(run)
                if what == "capacity_free":
                    per_run.append([mean(v for k, v in r.items() if k.startswith("capacity_free/")) if r else None
                                    for r in rows])
                else:
                    per_run.append([mean(v for k, v in r.items() if k.count("/") == 1 and k.endswith("/dormant"))
                                    if r else None for r in rows])
            ys = [mean(col) for col in zip(*per_run)]
            if any(y is not None for y in ys):
                ax.plot(x, [np.nan if y is None else y for y in ys], "o-", color=colors[method], label=method)
        ax.set_xticks(x, [f"{i}\n{g}" for i, g in zip(x, games)], fontsize=7)
        ax.set_xlabel("tasks learned", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    _legend(fig, axes[0], len(groups))
    return fig


def _figure_per_game(Figure, bands: dict[str, dict[str, dict]], colors, groups, ends, games, normalized) -> Any:
    ncols = min(3, len(games))
    nrows = math.ceil(len(games) / ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.2 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    starts = np.concatenate([[0.0], ends[:-1]])
    for j, game in enumerate(games):
        ax = axes[j]
        ax.axvspan(starts[j], ends[j], color="0.92", zorder=0, lw=0)  # the game's own training
        for method in bands:
            _plot_band(ax, bands[method][game], colors[method], method)
        _mark_games(ax, ends, games, labels=False)
        ax.set_xlim(starts[j], ends[-1])
        if normalized[j]:
            ax.set_ylim(-0.05, 1.05)
        ax.set_title(f"{j + 1}. {game}", fontsize=10)
        ax.set_xlabel("env steps (all games)", fontsize=8)
        ax.set_ylabel("normalized score" if normalized[j] else "raw score", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(games):]:
        ax.set_visible(False)
    _legend(fig, axes[0], len(bands), title="mean, band: min-max")
    return fig


def _trunk(path: Path) -> Any:
    """The trunk (with its BLIP state) of an Atari or a classification checkpoint."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/corrupt files
        raise UserError(f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}); restore it") from None
    if isinstance(payload, dict) and (payload.get("learner") == "classification"
                                      or str(payload.get("format", "")).startswith("blip-rl/classification")):
        from .classification.learner import load_checkpoint as load_classify

        return load_classify(path).model.trunk
    from .agents.checkpoint import load_checkpoint

    return load_checkpoint(path)[0].trunk


def _has_game_checkpoints(run: RunData) -> bool:
    return all((run.path / "checkpoints" / checkpoint_name(k, g)).is_file() for k, g in enumerate(run.games))


def _bit_maps(run: RunData) -> tuple[list[str], list[list[np.ndarray]], int, bool]:
    """Row labels (layer name and weight-map shape), heatmap images ``[layer][game]`` of the
    weights' frozen bits after each game, N, and whether any bit was frozen at all."""
    from .core import bit_map, blip_layers
    from .logging import heatmap_image

    layers: list[str] = []
    images: list[list[np.ndarray]] = []
    max_bits = 0
    frozen_any = False
    for k, game in enumerate(run.games):
        path = run.path / "checkpoints" / checkpoint_name(k, game)
        if not path.is_file():
            raise UserError(f"{path} is missing: the bit heatmaps need the checkpoint of every game of the run")
        found = [(f"{name or 'layer'}\n{tuple(bit_map(layer.frozen_bits('weight')).shape)}", layer)
                 for name, layer in blip_layers(_trunk(path))]
        if k == 0:
            layers = [name for name, _ in found]
            images = [[] for _ in found]
        for row, (name, layer) in enumerate(found):
            max_bits = layer.max_bits
            bits = layer.frozen_bits("weight").detach().cpu()
            frozen_any = frozen_any or bool(bits.any())
            images[row].append(heatmap_image(bits, layer.max_bits))
    return layers, images, max_bits, frozen_any


def _figure_bits(Figure, run: RunData, maps: tuple[list[str], list[list[np.ndarray]], int]) -> Any:
    import torch
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import ListedColormap, Normalize
    from matplotlib.ticker import MaxNLocator

    from .logging import heatmap_image

    layers, images, max_bits = maps
    n_games = len(run.games)
    fig = Figure(figsize=(2.6 * n_games + 1.2, 1.7 * max(len(layers), 1) + 0.6), layout="constrained")
    axes = fig.subplots(max(len(layers), 1), n_games, squeeze=False)
    for row, name in enumerate(layers):
        for k, game in enumerate(run.games):
            ax = axes[row][k]
            ax.imshow(images[row][k], aspect="auto", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"after {k + 1}. {game}", fontsize=9)
            if k == 0:
                ax.set_ylabel(name, fontsize=9)
    fig.suptitle(f"{run.method} (seed {run.seed}): frozen bits per weight "
                 "(rows: output units, columns: inputs)", fontsize=10)
    # The colour scale of heatmap_image itself, sampled from 0 to N frozen bits.
    colors = heatmap_image(torch.linspace(0, max_bits, 256), max_bits)[0]
    mappable = ScalarMappable(norm=Normalize(0, max_bits), cmap=ListedColormap(colors))
    bar = fig.colorbar(mappable, ax=axes, label="frozen bits", shrink=0.9)
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    return fig


# -- the report ---------------------------------------------------------------------------------
def _check_out(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UserError(f"--out {out_dir} already exists and is not empty; pick a new --out "
                         "(blip-rl report never overwrites files)")


def make_report(run_dirs: Sequence[str | Path], out_dir: str | Path,
                references: Sequence[str | Path] = ()) -> dict[str, Any]:
    """Write the report of ``run_dirs`` (finished runs of one game sequence) into the new ``out_dir``.

    :param run_dirs: run dirs made by ``blip-rl train --run-dir``; grouped by method, one per seed.
    :param out_dir: a directory that does not exist yet or is empty.
    :param references: run dirs that learned some of the games from scratch (alone, or first),
        for forward transfer (:func:`blip_rl.metrics.forward_transfer`).
    :returns: ``{"out_dir": Path, "files": [Path, ...], "table": str (table.md), "summary": dict
        (summary.json)}``.
    :raises ValueError: no runs, a path that is not a finished run dir, runs of different game
        sequences, a repeated (method, seed), or a non-empty ``out_dir``.
    :raises MissingDependencyError: matplotlib is not installed.
    """
    if not run_dirs:
        raise UserError("give at least one run dir (made by `blip-rl train --run-dir DIR`)")
    out_dir = Path(out_dir)
    _check_out(out_dir)
    groups = _group([load_run(p) for p in run_dirs])
    refs = reference_aucs(references, like=next(iter(groups.values()))[0]) if references else None
    if refs is not None and not set(refs) & set(next(iter(groups.values()))[0].games):
        raise UserError(f"none of the --reference runs learned a game of this sequence (they learned "
                        f"{', '.join(sorted(refs))}); give single-game runs of its games, e.g. `blip-rl train "
                        "--games G --run-dir DIR` with the same steps per game and evaluation schedule")
    Figure = _require_matplotlib()
    all_runs = [r for runs in groups.values() for r in runs]
    games = all_runs[0].games
    # A game without reference scores (not in the registry) is plotted as raw score.
    normalized = [all(r.results.normalized[j][j] is not None for r in all_runs) for j in range(len(games))]

    keys = [(KEYS["eval_normalized"] if normalized[j] else KEYS["eval_score"]).format(task=g)
            for j, g in enumerate(games)]
    acc_bands: dict[str, dict] = {}
    game_bands: dict[str, dict[str, dict]] = {}
    sources: dict[str, str] = {}
    for method, runs in groups.items():
        per_run = []
        for run in runs:
            curves, sources[str(run.path)] = _run_curves(run, [KEYS["accumulated"], *keys])
            per_run.append(curves)
        acc_bands[method] = _band([c[KEYS["accumulated"]] for c in per_run])
        game_bands[method] = {g: _band([c[key] for c in per_run]) for g, key in zip(games, keys)}

    summary = _summary(groups, refs)
    summary["curves_from"] = sources
    summary["curves"] = {"accumulated_normalized": acc_bands, "per_game": game_bands}
    table = _table(summary)
    colors = _colors(list(groups))
    ends = _boundaries(all_runs)

    out_dir.mkdir(parents=True, exist_ok=True)
    files = []

    def save_fig(fig, name: str) -> None:
        _save(fig, out_dir / name)
        files.append(out_dir / name)

    save_fig(_figure_accumulated(Figure, acc_bands, colors, groups, ends, games), "accumulated_normalized.png")
    save_fig(_figure_per_game(Figure, game_bands, colors, groups, ends, games, normalized), "per_game.png")
    save_fig(_figure_metrics(Figure, summary, colors), "metrics.png")
    if _has_plasticity(all_runs):
        save_fig(_figure_plasticity(Figure, groups, colors, games), "plasticity.png")
    unfrozen: list[str] = []
    for method, runs in groups.items():
        run = next((r for r in runs if _has_game_checkpoints(r)), None)
        if run is None:  # keep_checkpoints: last, or run files copied without checkpoints/
            summary.setdefault("warnings", []).append(
                f"no bit heatmaps of {method}: none of its runs has a checkpoint after each game "
                "(checkpoints/<k>_<game>.pt; keep_checkpoints: all keeps them)")
            continue
        *maps, frozen_any = _bit_maps(run)
        if not frozen_any:  # a method that freezes no bits (ft, ewc, ...): an all-zero map says nothing
            unfrozen.append(method)
            continue
        save_fig(_figure_bits(Figure, run, maps), f"bits_{_file_name(method)}.png")
    if unfrozen:
        summary["no_frozen_bits"] = unfrozen
        table += ("\n\nBit heatmaps (`bits_<method>.png`) are drawn for the methods that freeze bits; "
                  f"{', '.join(unfrozen)} froze none, so they have none.\n")
    atomic_write_text(out_dir / "table.md", table)
    files.append(out_dir / "table.md")
    atomic_write_text(out_dir / "table.tex", _latex(summary))
    files.append(out_dir / "table.tex")
    summary["files"] = [p.name for p in files] + ["summary.json"]
    atomic_write_json(out_dir / "summary.json", summary)
    files.append(out_dir / "summary.json")
    return {"out_dir": out_dir, "files": files, "table": table, "summary": summary}


# -- command line -------------------------------------------------------------------------------
def _cmd_report(args: argparse.Namespace, argv: list[str]) -> int:
    result = make_report(args.run_dirs, args.out, args.reference or ())
    print(result["table"])
    for warning in result["summary"].get("warnings", []):
        print(f"blip-rl: warning: {warning}", file=sys.stderr)
    print(f"Wrote {len(result['files'])} files to {result['out_dir']}:")
    for path in result["files"]:
        print(f"  {path.name}")
    return 0


def register(sub) -> None:
    """Add ``blip-rl report RUN_DIR... --out DIR`` to the ``blip-rl`` sub-commands."""
    r = sub.add_parser("report", help="figures (paper Figs. 2-4) and an ACC/BWT table from finished run dirs",
                       description="Figures and a table from finished run dirs, grouped by method and seed. "
                                   "Needs matplotlib: pip install 'blip-rl[report]'.")
    r.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run dirs of one game sequence (any methods, seeds)")
    r.add_argument("--out", required=True, help="new directory for the report (must not exist or be empty)")
    r.add_argument("--reference", nargs="+", metavar="RUN_DIR",
                   help="runs that learned games of this sequence from scratch (e.g. one game each): forward "
                        "transfer per game against them")
    r.set_defaults(func=_cmd_report)
