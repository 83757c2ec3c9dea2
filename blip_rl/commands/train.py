"""``blip-rl train``: learn games one after another with a continual method (a new run, or
``--resume`` of a stopped or killed one)."""
from __future__ import annotations

import argparse
import sys

from ..continual.scheduler import Interrupted
from ..errors import UserError
from .common import add_config_flags, given_config_flags, threads_flag, train_overrides

__all__ = ["register"]


def cmd_train(args: argparse.Namespace, argv: list[str]) -> int:
    from ..agents.ppo import NonFiniteLossError
    from ..api import resume_command, resume_training, run_training, start_training
    from ..config import load_config

    if args.resume:
        given = sorted({flag for flag, _ in given_config_flags(args)} | ({"--run-dir"} if args.run_dir else set()))
        if given:
            raise UserError(f"--resume continues a run with its own config.yaml; drop {', '.join(given)}")
        run = resume_training(args.resume, threads=threads_flag(args))  # a resumed run may land elsewhere
    else:
        if not args.run_dir:
            raise UserError("give --run-dir DIR for a new run (or --resume DIR to continue one)")
        notes: list[str] = []
        cfg = load_config(args.config, train_overrides(args), notes=notes)
        run = start_training(cfg, args.run_dir, argv=argv)
        run.notes[:0] = notes
    try:
        results = run_training(run, progress=not args.no_progress)
    except Interrupted as exc:
        print(f"\nblip-rl: stopped at env step {exc.step}; checkpoint {exc.checkpoint}.\n"
              f"Resume with: {resume_command(run.run_dir)}", file=sys.stderr)
        return 128 + (exc.signum or 2)
    except NonFiniteLossError as exc:
        print(f"\nblip-rl: error: {exc}.\nNothing after the last good checkpoint was saved "
              f"({run.run_dir / 'checkpoints'}); resume from it with: {resume_command(run.run_dir)}", file=sys.stderr)
        return 1
    if results.tasks_learned == len(run.cfg.games) and run.payload is not None and \
            run.payload["tasks_done"] == len(run.cfg.games):
        print(results.table())  # it was complete: nothing was trained
        return 0
    print("\nRaw evaluation scores (row: after learning that game; column: game evaluated):")
    print(results.table())
    print("\nNormalized scores (0 = random, 1 = single-task PPO reference):")
    print(results.table(normalized=True))
    print("\n" + results.time_split())
    print(f"\nResults: {run.run_dir / 'results.json'}, {run.run_dir / 'results.csv'}")
    print(f"Checkpoints: {run.run_dir / 'checkpoints'}")
    print(f"TensorBoard: tensorboard --logdir {run.run_dir / 'tb'}")
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
