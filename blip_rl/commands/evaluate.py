"""``blip-rl eval``: play a learned game with a checkpoint (or test a classification task)."""
from __future__ import annotations

import argparse
import json
import sys

from .common import precision_flag, threads_flag

__all__ = ["register"]


def cmd_eval(args: argparse.Namespace, argv: list[str]) -> int:
    from ..api import evaluate
    from ..continual.checkpoint import checkpoint_learner

    if checkpoint_learner(args.checkpoint) == "classification":
        out = evaluate(args.checkpoint, args.game)
        if args.json:
            print(json.dumps(out))
        else:
            print(f"{out['task']} with head {out['head']} of {args.checkpoint} (learned "
                  f"{', '.join(out['tasks_learned'])}): test accuracy {100 * out['accuracy']:.2f}% on "
                  f"{out['test_samples']} samples")
        return 0
    from tqdm import tqdm

    from ..agents.checkpoint import checkpoint_task, read_checkpoint

    game = checkpoint_task(args.checkpoint, args.game)[0]  # a game it has not learned: one line, before a bar
    config = read_checkpoint(args.checkpoint)["state"]["config"]
    episodes = args.episodes or (config.get("eval") or {}).get("episodes") or 0
    max_steps = args.max_episode_steps or (config.get("eval") or {}).get("max_episode_steps")
    bars = []  # made once the runtime line is out, so that the line comes first

    def started(runtime) -> None:
        if not args.json:
            print(f"blip-rl: {runtime.summary()}", file=sys.stderr)
        bars.append(tqdm(total=episodes, unit="game", dynamic_ncols=True, disable=args.json or args.no_progress,
                         desc=f"eval {game.name}"))

    # The same evaluation as during training (same seeds): with the run's settings and the same
    # number of episodes, this reproduces the row of results.json for that checkpoint.
    try:
        out = evaluate(args.checkpoint, args.game, episodes=args.episodes, seed=args.seed,
                       deterministic=False if args.sample else None, max_episode_steps=args.max_episode_steps,
                       device=args.device, precision=precision_flag(args), threads=threads_flag(args),
                       on_episode=lambda done, total: bars[0].update(done - bars[0].n),
                       on_step=lambda steps: bars[0].set_postfix_str(f"step {steps}/{max_steps}"),
                       on_runtime=started)
    finally:
        for bar in bars:
            bar.close()
    if args.json:
        print(json.dumps(out))
        return 0
    norm, mean, scores = out["normalized"], out["mean"], out["scores"]
    print(f"{out['title']} ({out['game']}) with head {out['head']} of {args.checkpoint} "
          f"(learned {', '.join(out['games_learned'])}):")
    print(f"  mean raw score {mean:.1f} over {len(scores)} games" + (f", normalized {norm:.3f}" if norm is not None
                                                                     else ""))
    print("  scores: " + ", ".join(f"{s:.0f}" for s in scores))
    cut = f"; {out['cut']} cut at {out['max_episode_steps']} steps" if out["cut"] else ""
    print(f"  {out['env_steps']:,} env steps in {out['seconds']:.1f} s "
          f"({out['env_steps'] / max(out['seconds'], 1e-9):,.0f} steps/s){cut}")
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
