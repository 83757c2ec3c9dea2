"""The task scheduler, shared by the Atari agent and the classification trainer.

Once per run (and on resume): ``method.start_sequence`` and ``method.bind`` (the task heads'
outputs). For each task k: ``method.start_task`` -> ``learner.begin_task`` -> ``learner.learn``
(periodic evaluation of every task learned so far) -> ``method.end_task`` with the learner's
Fisher data (BLIP: Fisher -> information gain -> frozen bits -> anchors) -> retraining where the
method asks for it (PackNet, after pruning) -> the policy-drift sample of task k -> checkpoint
-> evaluation of every task so far (scores and drift), one row of the score matrix ->
``results.json`` / ``results.csv``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Protocol

from torch import nn

from ..core import ContinualMethod, FisherData
from ..logging import KEYS, RunLogger
from .checkpoint import write_checkpoint
from .drift import Drift, DriftProbe
from .plasticity import measure_plasticity
from .results import Evaluation, Results

__all__ = ["Learner", "run_sequence", "checkpoint_name", "Interrupted", "EvalProgress", "PROGRESS", "LATEST"]


class Learner(Protocol):
    """What the scheduler needs of a learner (PPO on Atari, SGD on images, ...)."""

    #: Names of the tasks, in the order they are learned.
    task_names: list[str]
    #: The shared network the continual method protects (heads excluded).
    trunk: nn.Module
    #: Global step (env steps for RL, samples for classification), across tasks.
    global_step: int

    def begin_task(self, k: int, method: ContinualMethod, *, budget: int | None = None) -> None:
        """Activate task k (head, optimizer, schedule, data or env); attach the method's hooks.
        ``budget``: units the schedule spans when it is not a task's own (a retraining phase)."""

    def learn(self, k: int, budget: int, on_update: Callable[[int], None]) -> bool | None:
        """Learn task k up to ``budget`` units in all (counting what a resumed run already did);
        call ``on_update(global_step)`` after each update. A learner may also have
        ``finished(k, budget) -> bool`` (the update just made was the task's last): a periodic
        evaluation due then is skipped, since the task's own evaluation follows. A learner that accepts a keyword
        ``should_stop`` polls it and returns False when it stopped early."""

    def fisher_data(self, k: int) -> FisherData:
        """Inputs of task k (e.g. states of the policy's own rollouts) and its logits function."""

    def task_outputs(self, inputs: Any, k: int, *, training: bool = True) -> tuple[Any, Any]:
        """``(logits, values or None)`` of head k on ``inputs``, with gradients; ``training=False``
        puts the network in evaluation mode first (dropout off)."""

    def evaluate(self, k: int, *, on_episode: Callable[[int, int], None] | None = None,
                 on_step: Callable[[int], None] | None = None) -> float | Evaluation:
        """Raw score on task k (game score, accuracy) with task k's head, or an
        :class:`Evaluation` with what the games were like. ``on_episode(done, total)`` is
        called as games end and ``on_step(steps)`` as they go on (a learner without games
        may ignore both)."""

    def normalize(self, k: int, score: float) -> float | None:
        """Score on task k mapped to [0, 1], or ``None`` if no reference exists."""

    #: Which learner this is, in its checkpoints (e.g. ``"atari-ppo"``).
    kind: str

    def checkpoint_state(self, *, tasks_done: int, resumable: bool = False) -> dict[str, Any]:
        """``{"state": ..., "progress": ...}``: what rebuilds the learner's network alone, and with
        ``resumable`` what continuing the task in progress needs (optimizer, schedule, RNG
        states). The scheduler wraps it in the one checkpoint format
        (:mod:`blip_rl.continual.checkpoint`) with the method, the results and the counters."""

    def restore(self, payload: dict[str, Any], method: ContinualMethod) -> Any:
        """Load a checkpoint written from :meth:`checkpoint_state` into the learner and ``method``."""


def checkpoint_name(k: int, task: str) -> str:
    return f"{k}_{task}.pt"


#: The periodic checkpoint inside a task (also written on SIGINT/SIGTERM); ``--resume`` reads it.
PROGRESS = "progress.pt"
LATEST = "latest.pt"
#: Which checkpoints a run keeps (``keep_checkpoints``): every task's and the latest, or the latest only.
KEEP = ("all", "last")


class Interrupted(Exception):
    """Learning stopped on request (a signal); a resumable checkpoint was written first."""

    def __init__(self, step: int, checkpoint: Path) -> None:
        super().__init__(f"stopped at step {step}; checkpoint {checkpoint}")
        #: The signal that asked the run to stop (set by the run driver), or None.
        self.signum: int | None = None
        self.step = step
        self.checkpoint = checkpoint


#: Called while evaluating: (task name, its position among the tasks evaluated, how many are
#: evaluated, games done, games in all, steps of the longest game so far).
EvalProgress = Callable[[str, int, int, int, int, int], None]


def _evaluate_all(learner: Learner, upto: int, on_eval: EvalProgress | None = None) -> dict[str, Evaluation]:
    out = {}
    for j in range(upto + 1):
        name = learner.task_names[j]
        if on_eval is not None:
            state = [0, 0, 0]  # games done, games in all, steps

            def report(done: int | None = None, total: int | None = None, steps: int | None = None,
                       j: int = j, name: str = name, state: list[int] = state) -> None:
                for i, value in enumerate((done, total, steps)):
                    if value is not None:
                        state[i] = value
                on_eval(name, j, upto + 1, *state)

            report()
            result = learner.evaluate(j, on_episode=lambda done, total, report=report: report(done, total),
                                      on_step=lambda steps, report=report: report(steps=steps))
        else:
            result = learner.evaluate(j)
        out[name] = result if isinstance(result, Evaluation) else Evaluation(score=float(result))
    return out


def _eval_logits(learner: Learner) -> Callable[[Any, int], Any]:
    return lambda x, j: learner.task_outputs(x, j, training=False)[0]


def _measure_drift(learner: Learner, method: ContinualMethod, drift: DriftProbe | None,
                   upto: int) -> list[Drift | None]:
    """Drift of tasks 0..upto against their kept samples (None where none is kept)."""
    out: list[Drift | None] = []
    for j in range(upto + 1):
        if drift is None or j not in drift.kept:
            out.append(None)
            continue
        method.before_eval(j + 1)
        try:
            out.append(drift.measure(j, _eval_logits(learner), _device(learner)))
        finally:
            method.after_eval(j + 1)
    return out


def _device(learner: Learner) -> Any:
    return next(learner.trunk.parameters()).device


def _keep_drift_sample(learner: Learner, method: ContinualMethod, drift: DriftProbe | None, k: int,
                       seed: int) -> None:
    """Keep task k's drift sample, as head k answers now (after consolidation/retraining)."""
    if drift is None or not drift.enabled:
        return
    inputs = learner.fisher_data(k).inputs
    method.before_eval(k + 1)
    try:
        drift.keep(k, inputs, _eval_logits(learner), seed=seed)
    finally:
        method.after_eval(k + 1)


def _normalized(learner: Learner, evaluations: dict[str, Evaluation]) -> dict[str, tuple[float, float | None]]:
    return {task: (e.score, learner.normalize(j, e.score)) for j, (task, e) in enumerate(evaluations.items())}


def _log_evaluation(learner: Learner, method: ContinualMethod, results: Results, logger: RunLogger,
                    evaluations: dict[str, Evaluation], step: int, k: int,
                    drift: DriftProbe | None) -> tuple[dict[str, tuple[float, float | None]], list[Drift | None]]:
    """Log an evaluation of tasks 0..k (scores, games, drift) and add it to the learning curve."""
    scores = _normalized(learner, evaluations)
    logger.evaluation(scores, step)
    logger.episodes(evaluations, step)
    drifts = _measure_drift(learner, method, drift, k)
    for task, d in zip(scores, drifts):
        if d is not None:
            logger.scalar(KEYS["eval_drift"].format(task=task), d[0], step)
            logger.scalar(KEYS["eval_changed"].format(task=task), d[1], step)
    results.add_time("evaluation", sum(e.seconds for e in evaluations.values()),
                     sum(e.env_steps for e in evaluations.values()))
    t0 = time.perf_counter()
    plasticity = measure_plasticity(learner, method, drift, k)
    for name, value in plasticity.items():
        logger.scalar(KEYS["plasticity"].format(name=name), value, step)
    results.add_time("diagnostics", time.perf_counter() - t0)
    results.add_point(step, k, [s[0] for s in scores.values()], [s[1] for s in scores.values()], plasticity=plasticity)
    return scores, drifts


def _record_row(learner: Learner, method: ContinualMethod, results: Results, logger: RunLogger, run_dir: Path,
                k: int, on_message: Callable[[str], None] | None, on_eval: EvalProgress | None,
                drift: DriftProbe | None) -> None:
    """Evaluate every task up to k, add the row to the results, save them, log."""
    step = learner.global_step
    evaluations = _evaluate_all(learner, k, on_eval)
    scores, drifts = _log_evaluation(learner, method, results, logger, evaluations, step, k, drift)
    has_games = any(e.episodes for e in evaluations.values())
    results.add_row([s[0] for s in scores.values()], [s[1] for s in scores.values()], step,
                    cut=[e.cut if e.episodes else None for e in evaluations.values()],
                    episodes=[e.episodes or None for e in evaluations.values()],
                    drift=[d[0] if d is not None else None for d in drifts],
                    changed=[d[1] if d is not None else None for d in drifts])
    results.save(run_dir)
    logger.scalar(KEYS["acc"], results.acc, step)
    if k > 0:
        logger.scalar(KEYS["bwt"], results.bwt, step)
    logger.flush()
    if on_message is not None:
        row = ", ".join(f"{t} {raw:.4g}" + (f" ({n:.2f})" if n is not None else "") for t, (raw, n) in scores.items())
        cut = sum(e.cut for e in evaluations.values())
        games = sum(e.episodes for e in evaluations.values())
        note = f"; {cut} of {games} games cut at the step limit" if has_games and cut else ""
        on_message(f"after {learner.task_names[k]} (task {k + 1}/{len(learner.task_names)}, step {step}): {row}{note}")


def run_sequence(
    learner: Learner,
    method: ContinualMethod,
    *,
    run_dir: str | Path,
    budget: int,
    logger: RunLogger,
    eval_every: int = 0,
    checkpoint_every: int = 0,
    results: Results | None = None,
    tasks_done: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_message: Callable[[str], None] | None = None,
    on_eval: EvalProgress | None = None,
    should_stop: Callable[[], bool] | None = None,
    drift: DriftProbe | None = None,
    seed: int = 0,
    keep: str = "all",
) -> Results:
    """Learn ``learner.task_names`` in order with ``method``; return the score matrix.

    :param budget: units per task (env steps, or epochs), > 0. The learner counts what it has
        already done of the current task (after a resume) against it.
    :param eval_every: evaluate every task learned so far each time this many global steps have
        passed (0: only after each task).
    :param checkpoint_every: write ``checkpoints/progress.pt`` (resumable, with optimizer and RNG
        state) each time this many global steps have passed (0: only after each task).
    :param results: results of the tasks already done (to go on with a run).
    :param tasks_done: tasks already consolidated (default ``len(results.raw)``); when it exceeds
        the rows of ``results`` (a run stopped between checkpoint and evaluation), the missing
        row is evaluated first.
    :param on_progress: called with the global step after each update (a progress bar).
    :param on_message: called with one line of text per finished task.
    :param on_eval: called while evaluating, as games end (see :data:`EvalProgress`).
    :param should_stop: polled by the learner; when it returns True, learning stops after the
        current update, a resumable checkpoint is written and :class:`Interrupted` is raised.
    :param drift: the policy-drift probe (:class:`DriftProbe`; a resumed run passes the one of its
        checkpoint); None: drift is not measured.
    :param seed: seeds the choice of each task's drift sample.
    :param keep: ``all``: a checkpoint after each task (``<k>_<task>.pt``) beside ``latest.pt``;
        ``last``: ``latest.pt`` only (disk: one checkpoint, however many tasks). Either way
        ``progress.pt`` is removed once the last task is done (``latest.pt`` is newer).

    The wall time of each part (training, evaluation, Fisher/consolidation, checkpoints) is
    added up in ``results.time_s`` (see :meth:`Results.time_split`).
    """
    if budget <= 0:
        raise ValueError(f"the budget per task must be positive, got {budget}")
    if keep not in KEEP:
        raise ValueError(f"keep must be one of {', '.join(KEEP)}, got {keep!r}")
    run_dir = Path(run_dir)
    checkpoints = run_dir / "checkpoints"
    tasks = list(learner.task_names)
    results = results or Results(tasks=tasks, method=method.name)
    method.start_sequence(tasks)
    method.bind(lambda x, task: learner.task_outputs(x, task - 1))
    start = len(results.raw) if tasks_done is None else tasks_done
    if start > len(results.raw):
        _record_row(learner, method, results, logger, run_dir, start - 1, on_message, on_eval, drift)
    next_eval = [learner.global_step + eval_every] if eval_every > 0 else [None]
    next_ckpt = [learner.global_step + checkpoint_every] if checkpoint_every > 0 else [None]

    def save(path: Path, k: int, **kwargs) -> None:
        t0 = time.perf_counter()
        # The drift samples (14 MB per Atari game) go only into the checkpoints a run resumes from.
        keep = drift is not None and kwargs.get("resumable", False)
        write_checkpoint(path, learner, method, tasks_done=k, results=results,
                         drift=drift.state_dict() if keep else None, **kwargs)
        results.add_time("checkpoints", time.perf_counter() - t0)

    for k in range(start, len(tasks)):
        logger.scalar(KEYS["task_index"], k, learner.global_step)
        method.start_task(k + 1)
        # A method that retrains after end_task (PackNet) may have been stopped while retraining.
        retraining = method.tasks_done >= k + 1
        if retraining:
            learner.begin_task(k, method, budget=method.retrain_budget(k + 1, budget))
        else:
            learner.begin_task(k, method)
        inside = [0.0]  # seconds spent in evaluations and checkpoints during learn()
        # Periodic evaluations count from the task's start, so each task (and a single-task
        # reference run) is evaluated at the same offsets: what forward transfer compares.
        task_start = results.steps[k - 1] if 0 < k <= len(results.steps) else 0
        if eval_every > 0:
            next_eval[0] = task_start + eval_every * ((learner.global_step - task_start) // eval_every + 1)

        units = [budget]  # of the phase being learned (the task, or its retraining)
        phase = ["retrain" if retraining else "learn"]

        def on_update(step: int, k: int = k) -> None:
            if on_progress is not None:
                on_progress(step)
            t0 = time.perf_counter()
            if next_eval[0] is not None and step >= next_eval[0]:
                finished = getattr(learner, "finished", None)
                # At the task's last update the row's evaluation follows at once, unless the
                # method retrains first (then this is the only look at the network before it prunes).
                row_follows = (finished is not None and finished(k, units[0])
                               and (phase[0] == "retrain" or method.retrain_budget(k + 1, budget) == 0))
                if not row_follows:
                    _log_evaluation(learner, method, results, logger, _evaluate_all(learner, k, on_eval), step, k,
                                    drift)
                while next_eval[0] <= step:
                    next_eval[0] += eval_every
            if next_ckpt[0] is not None and step >= next_ckpt[0]:
                save(checkpoints / PROGRESS, k, resumable=True)
                while next_ckpt[0] <= step:
                    next_ckpt[0] += checkpoint_every
            inside[0] += time.perf_counter() - t0

        kwargs = {"should_stop": should_stop} if should_stop is not None else {}

        def learn(n: int, which: str, k: int = k) -> None:
            t0, step0 = time.perf_counter(), learner.global_step
            inside[0], units[0], phase[0] = 0.0, n, which
            finished = learner.learn(k, n, on_update, **kwargs)
            results.add_time("training", time.perf_counter() - t0 - inside[0], learner.global_step - step0)
            if finished is False:
                path = checkpoints / PROGRESS
                save(path, k, resumable=True)
                logger.flush()
                raise Interrupted(learner.global_step, path)

        if not retraining:
            learn(budget, "learn")
            t0 = time.perf_counter()
            data = learner.fisher_data(k) if method.needs_fisher else None
            stats = method.end_task(k + 1, data)
            results.add_time("consolidation", time.perf_counter() - t0)
            for name, value in stats.items():
                logger.scalar(KEYS["method_stat"].format(name=name), value, learner.global_step)
        extra = method.retrain_budget(k + 1, budget)
        if extra > 0:
            if not retraining:  # a fresh optimizer, and a schedule over the retraining's budget
                learner.begin_task(k, method, budget=extra)
            learn(extra, "retrain")
        _keep_drift_sample(learner, method, drift, k, seed)
        logger.bits(learner.trunk, learner.global_step)
        if keep == "all":
            save(checkpoints / checkpoint_name(k, tasks[k]), k + 1)
        save(checkpoints / LATEST, k + 1, resumable=True)
        _record_row(learner, method, results, logger, run_dir, k, on_message, on_eval, drift)
    # The run is complete: the in-task checkpoint is older than latest.pt and resumes nothing.
    (checkpoints / PROGRESS).unlink(missing_ok=True)
    return results
