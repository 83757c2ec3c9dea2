"""``blip-rl eval``: play a learned game with a checkpoint (or test a classification task)."""
from __future__ import annotations

import argparse
import json
import sys

from .common import checkpoint_runtime

__all__ = ["register"]


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
    from ..classification.datasets import load_benchmark
    from ..classification.learner import load_checkpoint as load_classify

    loaded = load_classify(args.checkpoint)
    learned = loaded.task_names[: loaded.tasks_done]
    if args.game not in learned:
        from ..continual.checkpoint import not_learned

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


def cmd_eval(args: argparse.Namespace, argv: list[str]) -> int:
    if _checkpoint_learner(args.checkpoint) == "classification":
        return _eval_classification(args)
    from tqdm import tqdm

    from ..agents.checkpoint import load_checkpoint, load_method
    from ..agents.evaluation import evaluate_game
    from ..config import merge, TrainConfig
    from ..envs.family import family_of

    from ..agents.checkpoint import checkpoint_task

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



def register(sub) -> None:
    """Add ``eval`` to the ``blip-rl`` sub-commands."""
    from ..flags import DEVICE_HELP, NO_PROGRESS_HELP, PRECISION_HELP, THREADS_HELP

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
    e.set_defaults(func=cmd_eval)
