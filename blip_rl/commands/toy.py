"""``blip-rl toy``: the two-task toy problem, what each method keeps (seconds, CPU)."""
from __future__ import annotations

import argparse

from .common import threads_flag

__all__ = ["register"]


def cmd_toy(args: argparse.Namespace, argv: list[str]) -> int:
    from ..system import resolve_runtime
    from ..toy import run_toy

    runtime = resolve_runtime(device="cpu", precision="fp32", threads=threads_flag(args) or 0)
    runtime.apply()
    print(f"blip-rl: {runtime.summary()}")

    print(f"Two-task toy problem, {args.epochs} epochs per task, seed {args.seed}")
    print(f"{'method':8s} {'task1 after 1':>14s} {'task1 after 2':>14s} {'task2 after 2':>14s} {'forgot':>8s}")
    for method in args.methods.split(","):
        r = run_toy(method.strip(), seed=args.seed, epochs=args.epochs)
        print(f"{r.method:8s} {r.acc_task1_after1:14.3f} {r.acc_task1_after2:14.3f} "
              f"{r.acc_task2_after2:14.3f} {r.forgetting:8.3f}")
    return 0



def register(sub) -> None:
    """Add ``toy`` to the ``blip-rl`` sub-commands."""
    from ..flags import DEFAULT_SEED, SEED_HELP, THREADS_HELP

    toy = sub.add_parser("toy", help="two-task toy problem: what each method keeps (seconds, CPU)")
    toy.add_argument("--methods", default="ft,ewc,ft-fix,blip", help="comma-separated methods to compare")
    toy.add_argument("--seed", type=int, default=DEFAULT_SEED, help=SEED_HELP)
    toy.add_argument("--epochs", type=int, default=30, help="epochs per task")
    toy.add_argument("--threads", type=int, help=f"{THREADS_HELP} (default: every core this process may use, "
                                                 "capped by OMP_NUM_THREADS / SLURM_CPUS_PER_TASK)")
    toy.set_defaults(func=cmd_toy)
