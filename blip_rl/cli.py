"""The ``blip-rl`` command line. Library code never prints; this module does."""
from __future__ import annotations

import argparse
import sys


def _cmd_toy(args: argparse.Namespace) -> int:
    from .toy import run_toy

    print(f"Two-task toy problem, {args.epochs} epochs per task, seed {args.seed}")
    print(f"{'method':8s} {'task1 after 1':>14s} {'task1 after 2':>14s} {'task2 after 2':>14s} {'forgot':>8s}")
    for method in args.methods.split(","):
        r = run_toy(method.strip(), seed=args.seed, epochs=args.epochs)
        print(f"{r.method:8s} {r.acc_task1_after1:14.3f} {r.acc_task1_after2:14.3f} "
              f"{r.acc_task2_after2:14.3f} {r.forgetting:8.3f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blip-rl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    toy = sub.add_parser("toy", help="two-task toy problem: what each method keeps (seconds, CPU)")
    toy.add_argument("--methods", default="ft,ewc,ft-fix,blip")
    toy.add_argument("--seed", type=int, default=0)
    toy.add_argument("--epochs", type=int, default=30)
    toy.set_defaults(func=_cmd_toy)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        print(f"blip-rl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("blip-rl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
