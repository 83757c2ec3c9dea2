"""``blip-rl info``: versions, the machine, and what ``auto`` chooses for precision and threads."""
from __future__ import annotations

import argparse

from ..errors import UserError
from ..runtime import resolve, run_workload
from .common import threads_flag

__all__ = ["register"]


def cmd_info(args: argparse.Namespace, argv: list[str]) -> int:
    from ..system import system_info

    cfg = None
    if args.config:
        from ..config import load_config

        cfg = load_config(args.config)
    if args.calibrate:
        from ..system import bf16_support, resolve_device

        native, why = bf16_support(resolve_device(args.device))
        if args.precision != "auto" or not native or resolve_device(args.device).type != "cpu":
            reason = (f"--precision {args.precision} is not auto" if args.precision != "auto" else
                      f"{why}, so auto is fp32 without one" if not native else
                      "on CUDA, auto follows the GPU's bf16 support")
            raise UserError(f"--calibrate measures bf16 against fp32 for --precision auto on a CPU; there is "
                            f"nothing to calibrate here ({reason})")
    runtime = resolve(device=args.device, precision=args.precision, threads=threads_flag(args),
                      n_envs=args.n_envs, workload=run_workload(cfg), recalibrate=args.calibrate)
    print(system_info(runtime), end="")
    return 0



def register(sub) -> None:
    """Add ``info`` to the ``blip-rl`` sub-commands."""
    from ..flags import DEVICE_HELP, PRECISION_HELP, THREADS_HELP

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
    i.set_defaults(func=cmd_info)
