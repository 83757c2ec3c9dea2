"""The ``blip-rl`` command line: train, eval, games, toy (and classify).

Library code never prints; this module does. Every user error ends in one line on stderr and
exit code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from .errors import UserError
from .io import lock_run_dir, make_run_dir, remove_stale_temp_files

EXIT_USAGE = 2




# -- helpers ----------------------------------------------------------------------------------------
def write_run_files(run_dir: Path, config: dict[str, Any], argv: list[str], runtime=None) -> None:
    """``config.yaml`` (with a ``runtime:`` section saying what was chosen on this machine and
    why; it is read back as information only), ``command.txt`` and ``system_info.txt``."""
    import yaml

    from .config import RUNTIME_KEY
    from .io import atomic_write_text
    from .system import system_info

    if runtime is not None:
        config = {**config, RUNTIME_KEY: runtime.to_dict()}
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    atomic_write_text(run_dir / "command.txt", shlex.join(["blip-rl", *argv]) + "\n")
    if runtime is not None:
        atomic_write_text(run_dir / "system_info.txt", system_info(runtime))


def _threads_flag(args: argparse.Namespace) -> int | None:
    """``--threads N`` (N >= 1), or None when it was not given."""
    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be at least 1, got {threads}; leave it out to use every usable core")
    return threads


def resolve_runtime_or_exit(*, device: str, precision: str, threads: int | None, n_envs: int, workload=None,
                            recalibrate: bool = False):
    """:func:`blip_rl.system.resolve_runtime` for a command: says on stderr when a calibration
    starts (seconds, once per machine) and prints each warning once, on stderr.

    :param workload: the network ``auto`` calibrates (:func:`blip_rl.agents.calibration.update_workload`).
    """
    from .system import resolve_runtime

    def calibrating(line: str) -> None:
        print(f"blip-rl: {line}", file=sys.stderr, flush=True)

    runtime = resolve_runtime(device=device, precision=precision, threads=threads or 0, n_envs=n_envs,
                              workload=workload, recalibrate=recalibrate, on_calibrate=calibrating)
    for warning in runtime.warnings:
        print(f"blip-rl: warning: {warning}", file=sys.stderr)
    return runtime


def run_workload(cfg=None):
    """The update an Atari run with ``cfg`` makes, for ``--precision auto``'s calibration."""
    from .agents.calibration import update_workload

    return update_workload(cfg)


def checkpoint_runtime(path: str | Path, args: argparse.Namespace, *, n_envs: int):
    """The runtime of ``eval``/``record`` for an Atari checkpoint: the device kind, precision and
    threads it was trained with (recorded in it), each unless a flag says otherwise, so that
    ``eval`` reproduces the run's own evaluation by default. Recorded bf16 is followed only
    where bf16 is native here; recorded threads only up to the cores (and ``OMP_NUM_THREADS``,
    ``SLURM_CPUS_PER_TASK``) this process may use. A checkpoint that records none (older ones)
    gets ``auto``, which reads the same calibrated verdict on the machine it trained on.

    :raises CheckpointError: the checkpoint cannot be read (before anything is calibrated).
    """
    import dataclasses

    from .agents.checkpoint import read_checkpoint
    from .config import TrainConfig, merge
    from .system import bf16_support, resolve_device, usable_cores
    from .threads import env_thread_cap

    state = read_checkpoint(path)["state"]
    trained = state.get("runtime") or {}
    try:
        cfg = merge(TrainConfig(), {k: v for k, v in (state.get("config") or {}).items()
                                    if k in ("features_dim", "env", "ppo")})
    except UserError:
        cfg = TrainConfig()
    trained_kind = str(trained.get("device", "")).split(":")[0]
    device = getattr(args, "device", None)
    if device is None:
        import torch

        device = "cuda" if trained_kind == "cuda" and torch.cuda.is_available() else "cpu" if trained_kind else "auto"
    here = resolve_device(device)
    same_kind = bool(trained_kind) and here.type == trained_kind
    precision = _precision_flag(args)
    follow_precision = precision is None and same_kind and trained.get("precision") in ("fp32", "bf16") and (
        trained["precision"] == "fp32" or bf16_support(here)[0])
    if follow_precision:
        precision = trained["precision"]
    threads = _threads_flag(args)
    cap = env_thread_cap()
    limit = min(usable_cores(), cap[0]) if cap else usable_cores()
    follow_threads = threads is None and same_kind and 1 <= int(trained.get("torch_threads") or 0) <= limit
    if follow_threads:
        threads = int(trained["torch_threads"])
    runtime = resolve_runtime_or_exit(device=device, precision=precision or "auto", threads=threads, n_envs=n_envs,
                                      workload=run_workload(cfg))
    changes = {}
    if follow_precision:
        changes["precision_reason"] = "as the checkpoint trained"
    if follow_threads:
        changes["threads_reason"] = "as the checkpoint trained"
    return dataclasses.replace(runtime, **changes) if changes else runtime


def _precision_flag(args: argparse.Namespace) -> str | None:
    """``--precision``, with ``--fast`` as an alias of ``--precision bf16``."""
    if getattr(args, "fast", None):
        if args.precision not in (None, "bf16"):
            raise UserError(f"--fast means --precision bf16; drop one of --fast and --precision {args.precision}")
        return "bf16"
    return args.precision


# -- train ------------------------------------------------------------------------------------------
#: The flags that set a run's config, declared once: ``train`` adds them all, ``sweep`` adds
#: those it does not vary itself and passes the given ones to every run, and ``--resume``
#: refuses them (a run goes on with its own config.yaml). (flag, config key, type, help)
CONFIG_FLAGS: tuple[tuple[str, str, type, str], ...] = (
    ("--games", "games", str, "comma-separated games, e.g. kungfu,boxing (see `blip-rl games`)"),
    ("--method", "method", str, "a registered method ({methods}) or package.module:Class "
                                "(options: --set method_options.KEY=VALUE)"),
    ("--steps-per-game", "steps_per_game", int, "env steps per game"),
    ("--n-envs", "env.n_envs", int, "parallel environments"),
    ("--seed", "seed", int, "seed of the run"),
    ("--device", "device", str, "auto | cpu | cuda"),
    ("--precision", "precision", str, "auto (default: bf16 only where native and faster) | fp32 | bf16"),
    ("--backend", "env.backend", str, "env backend: ale | sb3"),
    ("--eval-every", "eval.every", int, "env steps between evaluations of all learned games"),
    ("--eval-episodes", "eval.episodes", int, "evaluation games per learned game"),
    ("--f-prior", "blip.f_prior", float, "BLIP's F_prior"),
    ("--ig-rule", "blip.ig_rule", str, "paper | official"),
)


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def add_config_flags(parser: argparse.ArgumentParser, *, skip: tuple[str, ...] = ()) -> None:
    """Add :data:`CONFIG_FLAGS` (but ``skip``), ``--config``, ``--set`` and ``--fast``."""
    from .core import METHODS  # the registry, never a list of names

    parser.add_argument("--config", help="YAML config (e.g. configs/atari6.yaml, configs/quick.yaml)")
    for flag, _key, kind, help_text in CONFIG_FLAGS:
        if flag not in skip:
            parser.add_argument(flag, type=kind, help=help_text.format(methods=", ".join(sorted(METHODS))))
    parser.add_argument("--fast", action="store_const", const=True, help="alias of --precision bf16")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="any config key, e.g. ppo.n_steps=128")


def given_config_flags(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """The config flags given on this command line, as ``(flag, value)``."""
    given = [(flag, getattr(args, _dest(flag), None)) for flag, *_ in CONFIG_FLAGS]
    given += [("--config", args.config), ("--fast", args.fast)]
    given += [("--set", item) for item in args.set or []]
    return [(flag, value) for flag, value in given if value not in (None, False)]


def _train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides = {key: getattr(args, _dest(flag), None) for flag, key, *_ in CONFIG_FLAGS
                 if getattr(args, _dest(flag), None) is not None}
    if _precision_flag(args) is not None:
        overrides["precision"] = _precision_flag(args)
    if _threads_flag(args) is not None:
        overrides["threads"] = _threads_flag(args)
    from .config import parse_assignments

    overrides.update(parse_assignments(args.set))
    return overrides


def _resumed_precision(run_dir: Path, cfg) -> str:
    """``auto`` keeps the precision the run started with while it goes on on the same kind of
    machine (same device, CPU model, flags and torch ISA): a resumed run does not switch
    precision because a probe timed a busy moment differently. Elsewhere it chooses anew."""
    import yaml

    from .config import RUNTIME_KEY
    from .system import resolve_device, same_cpu_kind

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
    import json as _json

    from .agents.checkpoint import read_checkpoint
    from .config import load_config
    from .continual import LATEST, PROGRESS, Results

    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{run_dir} is not a blip-rl run dir (no config.yaml); start a run with --run-dir")
    cfg = load_config(run_dir / "config.yaml")
    results = None
    if (run_dir / "results.json").is_file():
        try:
            results = Results.from_dict(_json.loads((run_dir / "results.json").read_text()))
        except (ValueError, KeyError) as exc:
            raise UserError(f"{run_dir / 'results.json'} is unreadable ({exc}); it was written atomically, so "
                            "it was changed by hand: restore it or start a new run") from None
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


def _cmd_train(args: argparse.Namespace, argv: list[str]) -> int:
    from .config import load_config, to_dict

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
        threads = _threads_flag(args)  # a resumed run may land on another machine
        precision = _resumed_precision(run_dir, cfg)
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
        cfg = load_config(args.config, _train_overrides(args), notes=notes)
        from .envs.family import parse_tasks

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

    from .agents.learner import PPOLearner
    from .agents.ppo import NonFiniteLossError
    from .continual import DriftProbe, Interrupted, StopOnSignal, run_sequence
    from .core import make_method
    from .logging import KEYS, RunLogger

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
    from .system import system_info

    info = system_info(runtime)
    if payload is None:
        logger.text(KEYS["config"], "```\n" + yaml.safe_dump(to_dict(cfg), sort_keys=False) + "```")
    else:
        print(f"resuming {run_dir} at env step {learner.global_step} "
              f"({tasks_done} of {len(cfg.games)} games done)")
        _append_system_info(run_dir, info, learner.global_step)
        _record_resumed_runtime(run_dir, runtime, learner.global_step)
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


def _reference_warnings(cfg: Any) -> list[str]:
    """One line if some games have no reference score under the run's normalization."""
    from .envs.family import family_of, parse_tasks

    if cfg.normalization == "none":
        return []
    missing = [t for t in parse_tasks(cfg.games) if family_of(t).reference(t, cfg.normalization) is None]
    if not missing:
        return []
    return [f"warning: no {cfg.normalization} reference score for {', '.join(g.name for g in missing)}: their "
            "normalized scores are missing (TensorBoard has no eval/<game>/normalized for them, and the "
            "accumulated normalized reward leaves them out; see `blip-rl games`)"]


# -- eval -------------------------------------------------------------------------------------------
def _checkpoint_learner(path: str) -> str | None:
    """Which learner wrote the checkpoint at ``path`` (None: unreadable here; the reader says why)."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # the learner's own reader gives the error
        return None
    if not isinstance(payload, dict):
        return None
    if str(payload.get("format", "")).startswith("blip-rl/classification"):
        return "classification"
    return payload.get("learner")


def _eval_classification(args: argparse.Namespace) -> int:
    """``blip-rl eval`` of a classification checkpoint: test accuracy of one task with its head."""
    from .classification.datasets import load_benchmark
    from .classification.learner import load_checkpoint as load_classify

    loaded = load_classify(args.checkpoint)
    learned = loaded.task_names[: loaded.tasks_done]
    if args.game not in learned:
        from .continual.checkpoint import not_learned

        raise not_learned(args.checkpoint, args.game, learned, noun="task")
    k = loaded.task_names.index(args.game)
    config = loaded.extra.get("config") or {}
    tasks = load_benchmark(config["benchmark"], config.get("data_dir"), seed=loaded.seed, **(config.get("data") or {}))
    task = tasks[k]
    loaded.method.before_eval(k + 1)
    try:
        import torch

        loaded.model.eval()
        with torch.no_grad():
            correct = sum(int((loaded.model(x, k).argmax(1) == y).sum())
                          for x, y in zip(task.x_test.split(1000), task.y_test.split(1000)))
    finally:
        loaded.method.after_eval(k + 1)
    acc = correct / len(task.x_test)
    out = {"checkpoint": str(args.checkpoint), "task": task.name, "accuracy": acc, "test_samples": len(task.x_test),
           "tasks_done": loaded.tasks_done, "tasks_learned": learned, "method": loaded.method.name}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{task.name} with head {k} of {args.checkpoint} (learned {', '.join(learned)}): "
              f"test accuracy {100 * acc:.2f}% on {len(task.x_test)} samples")
    return 0


def _cmd_eval(args: argparse.Namespace, argv: list[str]) -> int:
    if _checkpoint_learner(args.checkpoint) == "classification":
        return _eval_classification(args)
    from tqdm import tqdm

    from .agents.checkpoint import load_checkpoint, load_method
    from .agents.evaluation import evaluate_game
    from .config import merge, TrainConfig
    from .envs.family import family_of

    from .agents.checkpoint import checkpoint_task

    game, head, learned = checkpoint_task(args.checkpoint, args.game)
    runtime = checkpoint_runtime(args.checkpoint, args, n_envs=args.episodes or 64)
    runtime.apply()
    policy, meta = load_checkpoint(args.checkpoint, device=runtime.device)
    policy.autocast_dtype = runtime.dtype
    method = load_method(meta, policy)  # a method that acts at evaluation time acts here too
    overrides = {k: v for k, v in meta["state"]["config"].items() if k in ("env", "eval", "seed", "normalization")}
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.max_episode_steps is not None:
        overrides["eval.max_episode_steps"] = args.max_episode_steps
    if args.sample:
        overrides["eval.deterministic"] = False
    cfg = merge(TrainConfig(), overrides)
    seed = cfg.seed
    episodes = args.episodes or cfg.eval.episodes
    if not args.json:
        print(f"blip-rl: {runtime.summary()}", file=sys.stderr)
    bar = tqdm(total=episodes, unit="game", dynamic_ncols=True, disable=args.json or args.no_progress,
               desc=f"eval {game.name}")

    def on_step(steps: int) -> None:
        bar.set_postfix_str(f"step {steps}/{cfg.eval.max_episode_steps}")

    # The same evaluation as during training (same seeds): with the run's settings and the same
    # number of episodes, this reproduces the row of results.json for that checkpoint.
    try:
        played = evaluate_game(policy, head, game, cfg, seed=seed, episodes=episodes, method=method,
                               on_episode=lambda done, total: bar.update(done - bar.n), on_step=on_step,
                               num_threads=runtime.env_threads)
    finally:
        bar.close()
    scores = played.scores
    mean = sum(scores) / len(scores)
    out = {"checkpoint": str(args.checkpoint), "game": game.name, "episodes": len(scores), "seed": seed,
           "precision": runtime.precision, "fast": runtime.precision == "bf16",
           "scores": scores, "mean": mean, "normalized": family_of(game).normalize(game, mean, cfg.normalization),
           "episode_steps": played.lengths, "cut": played.n_cut, "max_episode_steps": cfg.eval.max_episode_steps,
           "seconds": round(played.seconds, 3), "tasks_done": meta["tasks_done"], "games_learned": learned}
    if args.json:
        print(json.dumps(out))
    else:
        norm = out["normalized"]
        print(f"{game.title} ({game.name}) with head {head} of {args.checkpoint} "
              f"(learned {', '.join(learned)}):")
        print(f"  mean raw score {mean:.1f} over {len(scores)} games"
              + (f", normalized {norm:.3f}" if norm is not None else ""))
        print("  scores: " + ", ".join(f"{s:.0f}" for s in scores))
        cut = f"; {played.n_cut} cut at {cfg.eval.max_episode_steps} steps" if played.n_cut else ""
        print(f"  {played.env_steps:,} env steps in {played.seconds:.1f} s "
              f"({played.env_steps / max(played.seconds, 1e-9):,.0f} steps/s){cut}")
    return 0


# -- export -----------------------------------------------------------------------------------------
def _cmd_export(args: argparse.Namespace, argv: list[str]) -> int:
    """One learned game of an Atari checkpoint as a stable-baselines3 PPO zip and its model card."""
    from .agents.export import export_game

    done = export_game(args.checkpoint, args.game, args.out, force=args.force)
    print(f"{done.game} (head {done.head} of {args.checkpoint}) -> {done.zip_path}: stable-baselines3 PPO, "
          f"{done.n_actions} actions; load it with PPO.load({str(done.zip_path)!r})")
    print(f"model card (where it came from, scores, env settings, how to evaluate it): {done.card_path}")
    return 0


# -- games / toy ------------------------------------------------------------------------------------
def _cmd_games(args: argparse.Namespace, argv: list[str]) -> int:
    from .envs import ATARI57, list_games
    from .envs.family import families

    def fmt(x):
        return f"{x:>10.1f}" if x is not None else " " * 10

    print(f"{'family':8s} {'name':22s} {'title':24s} {'actions':>7s} {'random':>10s} {'human':>10s} {'ppo':>10s}  id")
    for fam in families():
        for task in fam.tasks():
            d = fam.describe(task)
            print(f"{fam.name:8s} {task.name:22s} {task.title:24s} {task.n_actions:7d} {fmt(d.get('random'))} "
                  f"{fmt(d.get('human'))} {fmt(d.get('ppo'))}  {getattr(task, 'gym_id', '')}")
    print("\nFamilies: " + "; ".join(f"{f.name}: {f.description} (e.g. {f.example})" for f in families()))
    games = list_games()
    n57 = sum(g.rom in ATARI57 for g in games)
    n_ppo = sum(g.ppo_score is not None for g in games)
    print(f"\n{len(games)} single-player ALE games; {n57} of the Atari-57 benchmark have random and human "
          f"scores (Mnih et al. 2015), {n_ppo} a PPO score (Schulman et al. 2017, Table 6).")
    print("Actions: size of the minimal action set. Scores are raw game points, in the default mode.")
    print("Pick a mode or difficulty with game:mode=N:difficulty=M (or its name, e.g. spaceinvaders-mode4);")
    print("a non-default mode has no reference scores.")
    return 0


def _cmd_info(args: argparse.Namespace, argv: list[str]) -> int:
    from .system import system_info

    cfg = None
    if args.config:
        from .config import load_config

        cfg = load_config(args.config)
    if args.calibrate:
        from .system import bf16_support, resolve_device

        native, why = bf16_support(resolve_device(args.device))
        if args.precision != "auto" or not native or resolve_device(args.device).type != "cpu":
            reason = (f"--precision {args.precision} is not auto" if args.precision != "auto" else
                      f"{why}, so auto is fp32 without one" if not native else
                      "on CUDA, auto follows the GPU's bf16 support")
            raise UserError(f"--calibrate measures bf16 against fp32 for --precision auto on a CPU; there is "
                            f"nothing to calibrate here ({reason})")
    runtime = resolve_runtime_or_exit(device=args.device, precision=args.precision, threads=_threads_flag(args),
                                      n_envs=args.n_envs, workload=run_workload(cfg), recalibrate=args.calibrate)
    print(system_info(runtime), end="")
    return 0


def _append_system_info(run_dir: Path, info: str, step: int) -> None:
    """On resume, add this machine's info to ``system_info.txt`` (the run may have moved)."""
    import time

    from .io import atomic_write_text

    path = run_dir / "system_info.txt"
    before = path.read_text() if path.is_file() else ""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    atomic_write_text(path, before + f"\n# resumed at env step {step} on {stamp}\n" + info)


def _record_resumed_runtime(run_dir: Path, runtime, step: int) -> None:
    """On resume with another device, precision or thread count than the run started with (or
    last resumed with), add it to ``config.yaml``'s ``runtime_resumed:`` list (information only,
    like ``runtime:``), so that a report of the run says it trained two ways."""
    import yaml

    from .config import RUNTIME_KEY, RUNTIME_RESUMED_KEY
    from .io import atomic_write_text

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


def _split_list_hint(argv: list[str], extra: list[str]) -> str:
    """For ``--games kungfu, boxing``: a word after one that ends in a comma was meant to be in it."""
    for word in extra:
        i = argv.index(word)
        if i > 0 and argv[i - 1].endswith(","):
            return (f"; {argv[i - 1]!r} ends with a comma: a space after it splits the list; write "
                    f"{argv[i - 1]}{word} (no spaces) or quote it")
    return ""


def _cmd_toy(args: argparse.Namespace, argv: list[str]) -> int:
    from .system import resolve_runtime
    from .toy import run_toy

    runtime = resolve_runtime(device="cpu", precision="fp32", threads=_threads_flag(args) or 0)
    runtime.apply()
    print(f"blip-rl: {runtime.summary()}")

    print(f"Two-task toy problem, {args.epochs} epochs per task, seed {args.seed}")
    print(f"{'method':8s} {'task1 after 1':>14s} {'task1 after 2':>14s} {'task2 after 2':>14s} {'forgot':>8s}")
    for method in args.methods.split(","):
        r = run_toy(method.strip(), seed=args.seed, epochs=args.epochs)
        print(f"{r.method:8s} {r.acc_task1_after1:14.3f} {r.acc_task1_after2:14.3f} "
              f"{r.acc_task2_after2:14.3f} {r.forgetting:8.3f}")
    return 0


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every command's help: descriptions as written, and each option's default where it has one
    (not where the default is "not given": those say in their help what they fall back to)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.default is not None and action.default is not False and action.default != argparse.SUPPRESS
                and "%(default)" not in text
                and "default" not in text and action.option_strings):
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """``blip-rl`` and its sub-commands: one help format for all (:class:`HelpFormatter`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["formatter_class"] = HelpFormatter
        super().__init__(*args, **kwargs)


from .flags import DEVICE_HELP, NO_PROGRESS_HELP, PRECISION_HELP, SEED_HELP, THREADS_HELP  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    from .flags import DEFAULT_SEED

    parser = Parser(prog="blip-rl", description="Continual RL on Atari with BLIP.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.subcommands = sub.choices  # type: ignore[attr-defined]  (main's errors name the subcommand)

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
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("eval", help="play a learned game with a checkpoint (or a classification task)")
    e.add_argument("checkpoint", help="RUN_DIR/checkpoints/<k>_<game>.pt (after game k, counted from 0) or latest.pt")
    e.add_argument("--game", "--task", dest="game", required=True,
                   help="the game (Atari) or task (classification) to evaluate, one the checkpoint has learned")
    e.add_argument("--episodes", type=int, help="games to play (default: the run's eval.episodes)")
    e.add_argument("--seed", type=int, help="seed of the evaluation envs (default: the run's, so that the "
                                            "checkpoint's results.json entries are reproduced)")
    e.add_argument("--max-episode-steps", type=int, help="agent steps after which a game is cut (default: the "
                                                         "run's eval.max_episode_steps)")
    e.add_argument("--device", help=f"{DEVICE_HELP} (default: the kind of device the checkpoint trained on, "
                                    "where this machine has one)")
    e.add_argument("--precision", help=f"{PRECISION_HELP} (default: the precision the checkpoint trained in)")
    e.add_argument("--fast", action="store_true", help="alias of --precision bf16")
    e.add_argument("--threads", type=int, help=f"{THREADS_HELP} (default: those the checkpoint trained with, "
                                               "where this process may use as many cores)")
    e.add_argument("--sample", action="store_true", help="sample actions instead of the run's eval setting")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    e.set_defaults(func=_cmd_eval)

    i = sub.add_parser("info", help="versions, the machine, and what auto would choose for precision and threads")
    i.add_argument("--device", default="auto", help=DEVICE_HELP)
    i.add_argument("--precision", default="auto", help=PRECISION_HELP)
    i.add_argument("--threads", type=int, help=f"{THREADS_HELP} to check (default: every usable core, capped by "
                                               "OMP_NUM_THREADS / SLURM_CPUS_PER_TASK)")
    i.add_argument("--n-envs", type=int, default=16, help="env count the thread choice is for")
    i.add_argument("--calibrate", action="store_true",
                   help="measure bf16 against fp32 again on this machine and store the verdict (auto reads it); "
                        "for the network and minibatch of --config and the thread count of --threads")
    i.add_argument("--config", help="the run config whose network and minibatch auto is for (default: the "
                                    "default config)")
    i.set_defaults(func=_cmd_info)

    x = sub.add_parser("export", help="write a learned game as a stable-baselines3 PPO zip, with a model card")
    x.add_argument("checkpoint", help="an Atari checkpoint: RUN_DIR/checkpoints/<k>_<game>.pt or latest.pt")
    x.add_argument("--game", required=True, help="the game to export, one the checkpoint has learned")
    x.add_argument("--out", required=True, help="the zip to write (.zip is appended to a name without suffix, as "
                                                "SB3 does); the model card goes beside it with the suffix .md")
    x.add_argument("--force", action="store_true", help="overwrite an existing zip and model card")
    x.set_defaults(func=_cmd_export)

    g = sub.add_parser("games", help="list the game registry")
    g.set_defaults(func=_cmd_games)

    toy = sub.add_parser("toy", help="two-task toy problem: what each method keeps (seconds, CPU)")
    toy.add_argument("--methods", default="ft,ewc,ft-fix,blip", help="comma-separated methods to compare")
    toy.add_argument("--seed", type=int, default=DEFAULT_SEED, help=SEED_HELP)
    toy.add_argument("--epochs", type=int, default=30, help="epochs per task")
    toy.add_argument("--threads", type=int, help=f"{THREADS_HELP} (default: every core this process may use, "
                                                 "capped by OMP_NUM_THREADS / SLURM_CPUS_PER_TASK)")
    toy.set_defaults(func=_cmd_toy)

    import importlib

    # Sub-commands of other modules; each imports its heavy or optional dependencies lazily.
    for module in ("classification.cli", "sweep", "report", "record"):
        try:
            mod = importlib.import_module(f".{module}", __package__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{module}":
                raise
            continue
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from .threads import env_thread_cap

    try:
        env_thread_cap()  # before torch is imported: its OpenMP runtime would complain in its own words
    except UserError as exc:
        print(f"blip-rl: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # the subcommand's own usage, and a hint for a list split by an unquoted space
        command = parser.subcommands.get(args.command, parser)
        command.error(f"unrecognized arguments: {' '.join(extra)}{_split_list_hint(argv, extra)}")
    if getattr(args, "episodes", 1) is not None and getattr(args, "episodes", 1) < 1:
        print("blip-rl: error: --episodes must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        return args.func(args, argv)
    except UserError as exc:  # bad input (ConfigError, CheckpointError, MethodError, ... are UserErrors)
        print(f"blip-rl: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # the output's reader stopped (`blip-rl games | head`): not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except OSError as exc:  # the machine's: a full disk, a file that cannot be written
        print(f"blip-rl: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("blip-rl: interrupted", file=sys.stderr)
        return 130
    except Exception:
        # Anything else is a bug in blip-rl: it is not caught; its traceback follows this line.
        print("blip-rl: internal error (a bug, not your input). Please report it with your command and the "
              "traceback below.", file=sys.stderr)
        raise


if __name__ == "__main__":
    sys.exit(main())
