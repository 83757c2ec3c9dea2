"""The Python API: what ``blip-rl train``, ``train --resume`` and ``eval`` do, for scripts and
notebooks. The commands are thin layers over these functions (they parse flags, call them and
print), so a run started here and one started from the shell write the same files::

    import blip_rl

    results = blip_rl.train(games=["minatar-breakout", "minatar-freeway"], method="blip",
                            steps_per_game=20_000, run_dir="runs/demo", n_envs=8, threads=1)
    print(results.table())                           # raw scores after each game
    score = blip_rl.evaluate("runs/demo/checkpoints/latest.pt", "minatar-breakout", episodes=5)
    agent = blip_rl.load("runs/demo/checkpoints/latest.pt")
    actions, _ = agent.predict(obs, game="minatar-breakout")   # SB3's predict, per game

Every function raises :class:`blip_rl.errors.UserError` (a ``ValueError``) for bad input, with the
message the command would print, before anything is written. A run stopped by SIGINT/SIGTERM
(Ctrl-C in a notebook) writes a checkpoint and raises :class:`Interrupted`; ``resume(run_dir)``
goes on from it.
"""
from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path
from typing import Any, Callable, Sequence

from .continual.results import Results
from .continual.scheduler import Interrupted
from .errors import UserError
from .io import lock_run_dir, remove_stale_temp_files
from .logging.mirror import check_wandb

__all__ = ["train", "classify", "resume", "evaluate", "load", "Agent", "Interrupted", "TrainingRun", "run_training",
           "start_training", "resume_training", "resumed_precision", "record_resumed_runtime"]


# --- the training run driver (``train`` and ``train --resume``) -------------------------------

@dataclasses.dataclass
class TrainingRun:
    """A run directory ready to be driven: its config, runtime, and what it resumes from."""

    run_dir: Path
    cfg: Any
    runtime: Any
    notes: list[str]
    results: Results | None = None
    payload: dict[str, Any] | None = None


def resumed_precision(run_dir: Path, cfg) -> str:
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


def record_resumed_runtime(run_dir: Path, runtime, step: int) -> None:
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


def start_training(cfg: Any, run_dir: str | Path, *, argv: Sequence[str]) -> TrainingRun:
    """A new run dir for ``cfg`` (a :class:`~blip_rl.config.TrainConfig`): games, device,
    precision and threads are checked first, so bad input leaves nothing on disk; then the run
    dir and its ``config.yaml``, ``command.txt`` and ``system_info.txt``."""
    from .runtime import resolve, run_workload
    from .config import to_dict
    from .continual.driver import start_run_dir
    from .envs.family import parse_tasks

    # Unknown / duplicate games and mixed observation shapes fail before anything is written;
    # the run keeps each task's canonical spelling (spaceinvaders:mode=4 -> spaceinvaders-mode4;
    # a gym: id as given), whose name is the one in every file and tag.
    cfg.games = [t.spec for t in parse_tasks(cfg.games, env_cfg=cfg.env)]
    notes = _reference_warnings(cfg)
    runtime = resolve(device=cfg.device, precision=cfg.precision, threads=cfg.threads, n_envs=cfg.env.n_envs,
                      workload=run_workload(cfg))
    check_wandb(cfg.wandb, Path(run_dir))
    run_dir = start_run_dir(Path(run_dir), to_dict(cfg), shlex.join(["blip-rl", *argv]), runtime)
    return TrainingRun(run_dir=run_dir, cfg=cfg, runtime=runtime, notes=notes)


def resume_training(run_dir: str | Path, *, threads: int | None = None) -> TrainingRun:
    """An existing run dir, locked for this process, with its config, results and newest
    checkpoint; ``threads`` (the machine may have changed) overrides the run's own."""
    from .agents.checkpoint import read_checkpoint
    from .runtime import resolve, run_workload
    from .config import load_config
    from .continual.driver import resume_state

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"cannot resume: {run_dir} does not exist")
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{run_dir} is not a blip-rl run dir (no config.yaml); start a run with --run-dir")
    lock_run_dir(run_dir)  # before anything is read or removed: one writer per run dir
    cfg = load_config(run_dir / "config.yaml")
    check_wandb(cfg.wandb, run_dir)
    payload, results = resume_state(run_dir, read_checkpoint)
    remove_stale_temp_files(run_dir)  # left by a kill in the middle of a write
    precision = resumed_precision(run_dir, cfg)
    runtime = resolve(device=cfg.device, precision=precision, threads=cfg.threads if threads is None else threads,
                      n_envs=cfg.env.n_envs, workload=run_workload(cfg))
    if precision != cfg.precision:
        runtime = dataclasses.replace(runtime, precision_reason="auto: kept from the start of this run, on the "
                                                                 "same kind of machine")
    return TrainingRun(run_dir=run_dir, cfg=cfg, runtime=runtime, notes=[], results=results, payload=payload)


def run_training(run: TrainingRun, *, progress: bool = True, say: Callable[[str], None] = print) -> Results:
    """Drive a started or resumed run to its end: learn the games left, evaluating, consolidating
    and checkpointing as the config says. SIGINT/SIGTERM stop it after the current update with a
    checkpoint (:class:`Interrupted`); a non-finite loss raises
    :class:`~blip_rl.agents.ppo.NonFiniteLossError` with nothing after the last good checkpoint saved.

    :param progress: a tqdm bar on stderr. :param say: where progress lines go (``print``).
    """
    import yaml
    from tqdm import tqdm

    from .agents.learner import PPOLearner
    from .config import to_dict
    from .continual import DriftProbe
    from .continual.driver import drive
    from .core import make_method
    from .logging import KEYS, RunLogger
    from .continual.driver import note_resume
    from .system import system_info

    cfg, run_dir, payload, results = run.cfg, run.run_dir, run.payload, run.results
    for note in run.notes:
        say(note)
    say(f"blip-rl: {run.runtime.summary()}")
    tasks_done = payload["tasks_done"] if payload is not None else None
    if tasks_done == len(cfg.games) and results is not None and results.tasks_learned == len(cfg.games):
        # Nothing to do: touch nothing (no TensorBoard writer: its purge would hide the curves).
        say(f"{run_dir} is complete: all {len(cfg.games)} games learned.\n")
        return results
    learner = PPOLearner(cfg, runtime=run.runtime, tb_dir=run_dir / "tb",
                         purge_step=int(payload["global_step"]) if payload is not None else None)
    method = make_method(cfg.method, learner.trunk, **cfg.method_kwargs())
    drift = DriftProbe(cfg.drift_samples)
    if payload is not None:
        learner.restore(payload, method)
        drift.load_state_dict(payload.get("drift"))
    mirror = None
    if cfg.wandb.project:
        from .logging.mirror import WandbMirror

        mirror = WandbMirror(cfg.wandb, run_dir, config=to_dict(cfg), resume=payload is not None)
        learner.mirror_scalars(mirror.scalar)
    logger = RunLogger(run_dir / "tb", purge_step=learner.global_step if payload is not None else None,
                       mirror=mirror)
    if payload is None:
        info = system_info(run.runtime)
        logger.text(KEYS["config"], "```\n" + yaml.safe_dump(to_dict(cfg), sort_keys=False) + "```")
    else:
        say(f"resuming {run_dir} at env step {learner.global_step} ({tasks_done} of {len(cfg.games)} games done)")
        info = note_resume(run_dir, run.runtime, f"env step {learner.global_step}")
        record_resumed_runtime(run_dir, run.runtime, learner.global_step)
    logger.text(KEYS["system"], "```\n" + info + "```", learner.global_step)
    total = cfg.steps_per_game * len(cfg.games)
    bar = tqdm(total=total, initial=min(learner.global_step, total), unit="step", dynamic_ncols=True,
               desc=f"{cfg.method} {','.join(cfg.games)}", disable=not progress)
    postfix = [False]  # the bar says "evaluating ..."

    def clear_postfix() -> None:
        if postfix[0]:
            bar.set_postfix_str("", refresh=False)
            postfix[0] = False

    def on_progress(step: int) -> None:
        clear_postfix()
        bar.update(min(step, total) - bar.n)

    def on_message(text: str) -> None:
        clear_postfix()  # an evaluation just ended
        if progress:
            bar.write(text)
        else:
            say(text)

    def on_eval(task: str, j: int, n: int, done: int, episodes: int, steps: int = 0) -> None:
        text = f"evaluating {task} (game {j + 1} of {n})"
        if episodes:
            text += f": {done}/{episodes} episodes"
        if steps:
            text += f", step {steps}/{cfg.eval.max_episode_steps}"
        bar.set_postfix_str(text)
        postfix[0] = True

    return drive(learner, method, logger, closing=(bar, learner), run_dir=run_dir, budget=cfg.steps_per_game,
                 eval_every=cfg.eval.every, checkpoint_every=cfg.checkpoint_every, results=results,
                 tasks_done=tasks_done, on_progress=on_progress, on_message=on_message, on_eval=on_eval,
                 drift=drift, seed=cfg.seed, keep=cfg.keep_checkpoints)


def resume_command(run_dir: str | Path) -> str:
    """The shell command that continues ``run_dir``."""
    return f"blip-rl train --resume {shlex.quote(str(run_dir))}"


# --- the public functions ---------------------------------------------------------------------

def train(games: Sequence[str] | str | None = None, method: str | None = None, *, run_dir: str | Path,
          steps_per_game: int | None = None, config: str | Path | None = None, seed: int | None = None,
          threads: int | None = None, precision: str | None = None, device: str | None = None,
          progress: bool = False, **overrides: Any) -> Results:
    """Learn ``games`` one after another with ``method``, as ``blip-rl train`` does; returns the
    run's :class:`~blip_rl.continual.results.Results` (also in ``run_dir/results.json``).

    :param games: task names (``["kungfu", "boxing"]``, ``"minatar-breakout,minatar-freeway"``,
        ``gym:ENV_ID``); default: the config's.
    :param config: a YAML file or a shipped config's name (``quick``, ``minatar3``); default: the defaults.
    :param overrides: any config key, nested sections as dicts or with ``__`` for the dot:
        ``n_envs=8`` (short for ``env={"n_envs": 8}``), ``ppo={"learning_rate": 1e-3}``,
        ``eval__episodes=5``, ``methods={"l2": {"strength": 100}}``, ``wandb="PROJECT"`` (as ``--wandb``).
    :raises UserError: an unknown key (naming the nearest valid one), a value out of range, a
        run dir that exists: before anything is written.
    :raises Interrupted: stopped by a signal, after writing a checkpoint (:func:`resume` goes on).
    """
    from .config import load_config

    given: dict[str, Any] = {}
    for key, value in overrides.items():
        key = key.replace("__", ".")
        if key == "wandb" and isinstance(value, str):
            key = "wandb.project"  # wandb="PROJECT", as --wandb PROJECT
        given["env.n_envs" if key == "n_envs" else key] = value
    for key, value in (("games", games), ("method", method), ("steps_per_game", steps_per_game), ("seed", seed),
                       ("threads", threads), ("precision", precision), ("device", device)):
        if value is not None:
            given[key] = ",".join(value) if key == "games" and not isinstance(value, str) else value
    cfg = load_config(config, given)
    argv = ["train", *(["--config", str(config)] if config is not None else []), "--run-dir", str(run_dir),
            *(f"--set={k}={_yaml(v)}" for k, v in given.items())]
    return run_training(start_training(cfg, run_dir, argv=argv), progress=progress)


def resume(run_dir: str | Path, *, threads: int | None = None, progress: bool = False) -> Results:
    """Continue a stopped or killed run from its newest checkpoint, as ``blip-rl train --resume``
    (or ``classify --resume`` for a classification run); returns its results (at once, if it had
    finished)."""
    if _is_classification_run(Path(run_dir)):
        from .classification.cli import config_of_run, run_classification

        cfg = config_of_run(Path(run_dir))
        if threads is not None:
            cfg.threads = threads
        return run_classification(cfg, run_dir, resume=True, command="")[0]
    return run_training(resume_training(run_dir, threads=threads), progress=progress)


def _is_classification_run(run_dir: Path) -> bool:
    import yaml

    try:
        data = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return False  # the training reader says what is wrong
    return isinstance(data, dict) and "benchmark" in data and "games" not in data


def classify(benchmark: str, method: str | None = None, *, run_dir: str | Path, config: str | Path | None = None,
             epochs: int | None = None, seed: int | None = None, threads: int | None = None,
             data_dir: str | Path | None = None, **overrides: Any) -> Results:
    """A continual classification benchmark (``digits5``, ``pmnist``, ...), as ``blip-rl classify``:
    the same methods, scheduler, files and report as :func:`train`.

    :param config: a YAML file; default: the benchmark's shipped ``configs/classification/<benchmark>.yaml``.
    :param overrides: config keys, nested as dicts or with ``__`` for the dot (``train__lr=0.01``,
        ``methods={"blip": {"f_prior": 1e-11}}``, ``wandb="PROJECT"``).
    """
    from .classification.cli import _validate, default_config_path, load_config as load_classify, run_classification

    given: dict[str, Any] = {}
    for key, value in overrides.items():
        key = key.replace("__", ".")
        given["wandb.project" if key == "wandb" and isinstance(value, str) else key] = value
    for key, value in (("method", method), ("epochs", epochs), ("seed", seed), ("threads", threads),
                       ("data_dir", None if data_dir is None else str(data_dir))):
        if value is not None:
            given[key] = value
    from .classification.datasets import BENCHMARKS

    if benchmark not in BENCHMARKS:
        raise UserError(f"unknown benchmark {benchmark!r}; choose one of {sorted(BENCHMARKS)}")
    cfg = load_classify(Path(config) if config is not None else default_config_path(benchmark), benchmark=benchmark,
                        overrides=given)
    cfg.benchmark = benchmark
    _validate(cfg)
    command = shlex.join(["blip-rl", "classify", "--benchmark", benchmark, "--run-dir", str(run_dir),
                          *(["--config", str(config)] if config is not None else []),
                          *(f"--set={k}={_yaml(v)}" for k, v in given.items())])
    return run_classification(cfg, run_dir, resume=False, command=command)[0]


def evaluate(checkpoint: str | Path, game: str, *, episodes: int | None = None, seed: int | None = None,
             deterministic: bool | None = None, max_episode_steps: int | None = None, device: str | None = None,
             precision: str | None = None, threads: int | None = None,
             on_episode: Callable[[int, int], None] | None = None,
             on_step: Callable[[int], None] | None = None,
             on_runtime: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Play ``game`` with a checkpoint's head for it, as ``blip-rl eval --json`` does, and return
    the same dict (``mean``, ``scores``, ``normalized``, ...). With the defaults (the run's seed,
    episodes and settings, the precision it trained in) it reproduces the checkpoint's entry of
    ``results.json``. A classification checkpoint gives the task's test ``accuracy``.

    :param on_episode: ``(done, total)`` after each game; :param on_step: agent steps of the longest
        game so far; :param on_runtime: the resolved device/precision/threads, before the games.
    """
    from .continual.checkpoint import checkpoint_learner

    if checkpoint_learner(checkpoint) == "classification":
        return _evaluate_classification(checkpoint, game)
    from .agents.checkpoint import checkpoint_task, load_checkpoint, load_method
    from .agents.evaluation import evaluate_game
    from .runtime import checkpoint_runtime
    from .config import TrainConfig, merge
    from .envs.family import family_of

    game_task, head, learned = checkpoint_task(checkpoint, game)
    runtime = checkpoint_runtime(checkpoint, device=device, precision=precision, threads=threads,
                                 n_envs=episodes or 64)
    runtime.apply()
    if on_runtime is not None:
        on_runtime(runtime)
    policy, meta = load_checkpoint(checkpoint, device=runtime.device)
    policy.autocast_dtype = runtime.dtype
    method = load_method(meta, policy)  # a method that acts at evaluation time acts here too
    given = {k: v for k, v in meta["state"]["config"].items() if k in ("env", "eval", "seed", "normalization")}
    if seed is not None:
        given["seed"] = seed
    if max_episode_steps is not None:
        given["eval.max_episode_steps"] = max_episode_steps
    if deterministic is not None:
        given["eval.deterministic"] = deterministic
    cfg = merge(TrainConfig(), given)
    episodes = episodes or cfg.eval.episodes
    played = evaluate_game(policy, head, game_task, cfg, seed=cfg.seed, episodes=episodes, method=method,
                           on_episode=on_episode, on_step=on_step, num_threads=runtime.env_threads)
    mean = sum(played.scores) / len(played.scores)
    return {"checkpoint": str(checkpoint), "game": game_task.name, "title": game_task.title, "head": head,
            "episodes": len(played.scores), "seed": cfg.seed, "precision": runtime.precision,
            "fast": runtime.precision == "bf16", "runtime": runtime.summary(), "scores": played.scores,
            "mean": mean, "normalized": family_of(game_task).normalize(game_task, mean, cfg.normalization),
            "episode_steps": played.lengths, "cut": played.n_cut, "max_episode_steps": cfg.eval.max_episode_steps,
            "env_steps": played.env_steps, "seconds": round(played.seconds, 3), "tasks_done": meta["tasks_done"],
            "games_learned": learned}


def _evaluate_classification(checkpoint: str | Path, task_name: str) -> dict[str, Any]:
    """Test accuracy of one task of a classification checkpoint, with its head."""
    import torch

    from .classification.datasets import load_benchmark
    from .classification.learner import load_checkpoint as load_classify

    loaded = load_classify(checkpoint)
    learned = loaded.task_names[: loaded.tasks_done]
    if task_name not in learned:
        from .continual.checkpoint import not_learned

        raise not_learned(checkpoint, task_name, learned, noun="task")
    k = loaded.task_names.index(task_name)
    config = loaded.extra.get("config") or {}
    tasks = load_benchmark(config["benchmark"], config.get("data_dir"), seed=loaded.seed, **(config.get("data") or {}))
    task = tasks[k]
    loaded.method.before_eval(k + 1)
    try:
        loaded.model.eval()
        with torch.no_grad():
            correct = sum(int((loaded.model(x, k).argmax(1) == y).sum())
                          for x, y in zip(task.x_test.split(1000), task.y_test.split(1000)))
    finally:
        loaded.method.after_eval(k + 1)
    return {"checkpoint": str(checkpoint), "task": task.name, "head": k, "accuracy": correct / len(task.x_test),
            "test_samples": len(task.x_test), "tasks_done": loaded.tasks_done, "tasks_learned": learned,
            "method": loaded.method.name}


class Agent:
    """A learned multi-game policy from a checkpoint, with stable-baselines3's ``predict`` per game.

    ``obs`` is what the game's env gives (``make_eval_env`` of its family, the wrappers an
    export's model card writes): one observation or a batch. A method that acts at evaluation
    time (PackNet's mask for the game) acts inside ``predict``.
    """

    def __init__(self, checkpoint: str | Path, *, device: str = "cpu") -> None:
        from .agents.checkpoint import load_checkpoint, load_method, read_checkpoint

        payload = read_checkpoint(checkpoint)
        self.checkpoint = Path(checkpoint)
        self.policy, self.payload = load_checkpoint(checkpoint, device=device)
        self.method = load_method(self.payload, self.policy)
        #: The games learned, in order; their heads are 0, 1, ...
        self.games: list[str] = list(payload["tasks"][: payload["tasks_done"]])

    def head(self, game: str) -> int:
        from .agents.checkpoint import checkpoint_task

        return checkpoint_task(self.checkpoint, game)[1]

    def predict(self, obs: Any, game: str, *, deterministic: bool = True) -> tuple[Any, None]:
        """Actions for ``obs`` on ``game`` (SB3's ``(actions, state)``; state is always None)."""
        head = self.head(game)
        self.policy.activate(head)
        self.method.before_eval(head + 1)
        try:
            actions, _ = self.policy.predict(obs, deterministic=deterministic)
        finally:
            self.method.after_eval(head + 1)
        return actions, None

    def make_env(self, game: str, *, n_envs: int = 1, seed: int = 0):
        """The game's vector env with the settings the run trained with (frame stacking, sticky
        actions, padding to the trunk's channels): what :meth:`predict` expects. SB3's VecEnv API:
        ``obs = env.reset()``, ``obs, rewards, dones, infos = env.step(actions)``."""
        from .config import TrainConfig, merge
        from .envs.family import family_of

        task = self._task(game)
        config = self.payload["state"].get("config") or {}
        cfg = merge(TrainConfig(), {k: v for k, v in config.items() if k == "env"})
        return family_of(task).make_vec_env(task, n_envs=n_envs, seed=seed, training=False, env_cfg=cfg.env)

    def _task(self, game: str):
        from .agents.checkpoint import checkpoint_task

        return checkpoint_task(self.checkpoint, game)[0]

    def __repr__(self) -> str:
        return f"Agent({str(self.checkpoint)!r}, games={self.games}, method={self.method.name!r})"


def load(checkpoint: str | Path, *, device: str = "cpu") -> Agent:
    """The policy of an Atari/MinAtar/gym checkpoint as an :class:`Agent` (``predict(obs, game=...)``)."""
    from .continual.checkpoint import checkpoint_learner

    if checkpoint_learner(checkpoint) == "classification":
        raise UserError(f"{checkpoint} is a classification checkpoint: evaluate it with "
                        "blip_rl.evaluate(checkpoint, task)")
    return Agent(checkpoint, device=device)


def _yaml(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
