"""``blip-rl train``: learn games one after another with a continual method (a new run, or
``--resume`` of a stopped or killed one)."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..io import lock_run_dir, make_run_dir, remove_stale_temp_files
from .common import (add_config_flags, given_config_flags, resolve_runtime_or_exit, run_workload, threads_flag,
                     train_overrides, write_run_files)

__all__ = ["register", "resumed_precision", "record_resumed_runtime"]


def resumed_precision(run_dir: Path, cfg) -> str:
    """``auto`` keeps the precision the run started with while it goes on on the same kind of
    machine (same device, CPU model, flags and torch ISA): a resumed run does not switch
    precision because a probe timed a busy moment differently. Elsewhere it chooses anew."""
    import yaml

    from ..config import RUNTIME_KEY
    from ..system import resolve_device, same_cpu_kind

    if cfg.precision != "auto":
        return cfg.precision
    try:
        before = (yaml.safe_load((run_dir / "config.yaml").read_text()) or {}).get(RUNTIME_KEY) or {}
        device = str(resolve_device(cfg.device))
    except (OSError, yaml.YAMLError, ValueError, AttributeError):
        return "auto"
    same = before.get("device") == device and same_cpu_kind(before.get("cpu"))
    return before["precision"] if same and before.get("precision") in ("fp32", "bf16") else "auto"


def _resume_state(run_dir: Path):
    """Config, results and newest checkpoint payload (or None) of an existing run dir."""
    from ..agents.checkpoint import read_checkpoint
    from ..config import load_config
    from ..continual import LATEST, PROGRESS, Results

    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{run_dir} is not a blip-rl run dir (no config.yaml); start a run with --run-dir")
    cfg = load_config(run_dir / "config.yaml")
    results = None
    results = Results.load(run_dir) if (run_dir / "results.json").is_file() else None
    payloads = [read_checkpoint(run_dir / "checkpoints" / name) for name in (LATEST, PROGRESS)
                if (run_dir / "checkpoints" / name).is_file()]
    payload = max(payloads, key=lambda p: (p["global_step"], p["tasks_done"]), default=None)
    if payload is not None and payload.get("results"):
        # The checkpoint's results match its state (its learning curve stops where training
        # resumes); results.json is newer only when it holds a row evaluated after the checkpoint.
        saved = Results.from_dict(payload["results"])
        if results is None or len(saved.raw) >= len(results.raw):
            results = saved
    return cfg, results, payload


def _append_system_info(run_dir: Path, info: str, step: int) -> None:
    """On resume, add this machine's info to ``system_info.txt`` (the run may have moved)."""
    import time

    from ..io import atomic_write_text

    path = run_dir / "system_info.txt"
    before = path.read_text() if path.is_file() else ""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    atomic_write_text(path, before + f"\n# resumed at env step {step} on {stamp}\n" + info)


def record_resumed_runtime(run_dir: Path, runtime, step: int) -> None:
    """On resume with another device, precision or thread count than the run started with (or
    last resumed with), add it to ``config.yaml``'s ``runtime_resumed:`` list (information only,
    like ``runtime:``), so that a report of the run says it trained two ways."""
    import yaml

    from ..config import RUNTIME_KEY, RUNTIME_RESUMED_KEY
    from ..io import atomic_write_text

    path = run_dir / "config.yaml"
    data = yaml.safe_load(path.read_text()) or {}
    history = [data.get(RUNTIME_KEY) or {}, *(data.get(RUNTIME_RESUMED_KEY) or [])]

    def how(r: dict) -> tuple:
        return str(r.get("device", "")).split(":")[0], r.get("precision"), r.get("torch_threads")

    if how(history[-1]) == how(runtime.to_dict()):
        return
    entry = {"at_step": step, **{k: runtime.to_dict()[k] for k in ("device", "precision", "precision_reason",
                                                                   "torch_threads", "threads_reason", "cpu")}}
    data[RUNTIME_RESUMED_KEY] = [*(data.get(RUNTIME_RESUMED_KEY) or []), entry]
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))


def _reference_warnings(cfg: Any) -> list[str]:
    """One line if some games have no reference score under the run's normalization."""
    from ..envs.family import family_of, parse_tasks

    if cfg.normalization == "none":
        return []
    missing = [t for t in parse_tasks(cfg.games) if family_of(t).reference(t, cfg.normalization) is None]
    if not missing:
        return []
    return [f"warning: no {cfg.normalization} reference score for {', '.join(g.name for g in missing)}: their "
            "normalized scores are missing (TensorBoard has no eval/<game>/normalized for them, and the "
            "accumulated normalized reward leaves them out; see `blip-rl games`)"]


def cmd_train(args: argparse.Namespace, argv: list[str]) -> int:
    from ..config import load_config, to_dict

    payload = results = None
    notes: list[str] = []
    if args.resume:
        given = sorted({flag for flag, _ in given_config_flags(args)} | ({"--run-dir"} if args.run_dir else set()))
        if given:
            raise UserError(f"--resume continues a run with its own config.yaml; drop {', '.join(given)}")
        run_dir = Path(args.resume)
        if not run_dir.is_dir():
            raise UserError(f"cannot resume: {run_dir} does not exist")
        if (run_dir / "config.yaml").is_file():
            lock_run_dir(run_dir)  # before anything is read or removed: one writer per run dir
        cfg, results, payload = _resume_state(run_dir)
        remove_stale_temp_files(run_dir)  # left by a kill in the middle of a write
        threads = threads_flag(args)  # a resumed run may land on another machine
        precision = resumed_precision(run_dir, cfg)
        runtime = resolve_runtime_or_exit(device=cfg.device, precision=precision,
                                          threads=cfg.threads if threads is None else threads, n_envs=cfg.env.n_envs,
                                          workload=run_workload(cfg))
        if precision != cfg.precision:
            import dataclasses

            runtime = dataclasses.replace(runtime, precision_reason="auto: kept from the start of this run, on the "
                                                                     "same kind of machine")
    else:
        if not args.run_dir:
            raise UserError("give --run-dir DIR for a new run (or --resume DIR to continue one)")
        cfg = load_config(args.config, train_overrides(args), notes=notes)
        from ..envs.family import parse_tasks

        # Unknown / duplicate games and mixed observation shapes fail before anything is written;
        # the run keeps each task's canonical spelling (spaceinvaders:mode=4 -> spaceinvaders-mode4;
        # a gym: id as given), whose name is the one in every file and tag.
        cfg.games = [t.spec for t in parse_tasks(cfg.games, env_cfg=cfg.env)]
        notes.extend(_reference_warnings(cfg))
        # Device, precision and threads are checked before the run dir is made.
        runtime = resolve_runtime_or_exit(device=cfg.device, precision=cfg.precision, threads=cfg.threads,
                                          n_envs=cfg.env.n_envs, workload=run_workload(cfg))
        run_dir = make_run_dir(Path(args.run_dir))
        write_run_files(run_dir, to_dict(cfg), argv, runtime)
    for note in notes:
        print(note)
    print(f"blip-rl: {runtime.summary()}")

    import yaml
    from tqdm import tqdm

    from ..agents.learner import PPOLearner
    from ..agents.ppo import NonFiniteLossError
    from ..continual import DriftProbe, Interrupted, StopOnSignal, run_sequence
    from ..core import make_method
    from ..logging import KEYS, RunLogger

    tasks_done = payload["tasks_done"] if payload is not None else None
    if tasks_done == len(cfg.games) and results is not None and len(results.raw) == len(cfg.games):
        # Nothing to do: touch nothing (no TensorBoard writer: its purge would hide the curves).
        print(f"{run_dir} is complete: all {len(cfg.games)} games learned.\n")
        print(results.table())
        return 0
    learner = PPOLearner(cfg, runtime=runtime, tb_dir=run_dir / "tb",
                           purge_step=int(payload["global_step"]) if payload is not None else None)
    method = make_method(cfg.method, learner.trunk, **cfg.method_kwargs())
    drift = DriftProbe(cfg.drift_samples)
    if payload is not None:
        learner.restore(payload, method)
        drift.load_state_dict(payload.get("drift"))
    logger = RunLogger(run_dir / "tb", purge_step=learner.global_step if payload is not None else None)
    from ..system import system_info

    info = system_info(runtime)
    if payload is None:
        logger.text(KEYS["config"], "```\n" + yaml.safe_dump(to_dict(cfg), sort_keys=False) + "```")
    else:
        print(f"resuming {run_dir} at env step {learner.global_step} "
              f"({tasks_done} of {len(cfg.games)} games done)")
        _append_system_info(run_dir, info, learner.global_step)
        record_resumed_runtime(run_dir, runtime, learner.global_step)
    logger.text(KEYS["system"], "```\n" + info + "```", learner.global_step)
    total = cfg.steps_per_game * len(cfg.games)
    bar = tqdm(total=total, initial=min(learner.global_step, total), unit="step", dynamic_ncols=True,
               desc=f"{cfg.method} {','.join(cfg.games)}", disable=args.no_progress)

    postfix = [False]  # the bar says "evaluating ..."

    def clear_postfix() -> None:
        if postfix[0]:
            bar.set_postfix_str("", refresh=False)
            postfix[0] = False

    def progress(step: int) -> None:
        clear_postfix()
        bar.update(min(step, total) - bar.n)

    def message(text: str) -> None:
        clear_postfix()  # an evaluation just ended
        bar.write(text)

    def evaluating(task: str, j: int, n: int, done: int, episodes: int, steps: int = 0) -> None:
        text = f"evaluating {task} (game {j + 1} of {n})"
        if episodes:
            text += f": {done}/{episodes} episodes"
        if steps:
            text += f", step {steps}/{cfg.eval.max_episode_steps}"
        bar.set_postfix_str(text)
        postfix[0] = True

    resume_cmd = f"blip-rl train --resume {shlex.quote(str(run_dir))}"
    try:
        with StopOnSignal() as stop:
            results = run_sequence(learner, method, run_dir=run_dir, budget=cfg.steps_per_game, logger=logger,
                                   eval_every=cfg.eval.every, checkpoint_every=cfg.checkpoint_every,
                                   results=results, tasks_done=tasks_done, on_progress=progress,
                                   on_message=message, on_eval=evaluating, should_stop=stop.requested,
                                   drift=drift, seed=cfg.seed, keep=cfg.keep_checkpoints)
    except Interrupted as exc:
        bar.close()
        print(f"\nblip-rl: stopped at env step {exc.step}; checkpoint {exc.checkpoint}.\n"
              f"Resume with: {resume_cmd}", file=sys.stderr)
        return 128 + (stop.signum or 2)
    except NonFiniteLossError as exc:
        bar.close()
        print(f"\nblip-rl: error: {exc}.\nNothing after the last good checkpoint was saved "
              f"({run_dir / 'checkpoints'}); resume from it with: {resume_cmd}", file=sys.stderr)
        return 1
    finally:
        bar.close()
        learner.close()
        logger.close()
    print("\nRaw evaluation scores (row: after learning that game; column: game evaluated):")
    print(results.table())
    print("\nNormalized scores (0 = random, 1 = single-task PPO reference):")
    print(results.table(normalized=True))
    print("\n" + results.time_split())
    print(f"\nResults: {run_dir / 'results.json'}, {run_dir / 'results.csv'}")
    print(f"Checkpoints: {run_dir / 'checkpoints'}")
    print(f"TensorBoard: tensorboard --logdir {run_dir / 'tb'}")
    return 0



def register(sub) -> None:
    """Add ``train`` to the ``blip-rl`` sub-commands."""
    from ..flags import NO_PROGRESS_HELP, THREADS_HELP

    t = sub.add_parser("train", help="learn games one after another with a continual method",
                       description="Learn games one after another with a continual method. Files and heads count "
                                   "games from 0 (checkpoints/0_kungfu.pt, head 0); progress lines count from 1 "
                                   "(task 1/2).")
    add_config_flags(t)
    t.add_argument("--threads", type=int, help=f"{THREADS_HELP} (default: every core this process may use, capped "
                                               "by OMP_NUM_THREADS / SLURM_CPUS_PER_TASK)")
    t.add_argument("--run-dir", help="new directory for this run's files")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped or killed run from its last checkpoint")
    t.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    t.set_defaults(func=cmd_train)
