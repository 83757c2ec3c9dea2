"""What the commands share: one help format, the config flags (declared once), the runtime
(device, precision, threads) a command resolves, and the files a new run starts with.

Library code never prints; the command modules do. Every user error ends in one line on stderr
and exit code 2 (:data:`EXIT_USAGE`), never a traceback.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from ..errors import UserError

__all__ = ["EXIT_USAGE", "CONFIG_FLAGS", "HelpFormatter", "Parser", "add_config_flags", "checkpoint_runtime",
           "given_config_flags", "precision_flag", "resolve_runtime_or_exit", "run_workload", "threads_flag",
           "train_overrides", "write_run_files"]

EXIT_USAGE = 2


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


def write_run_files(run_dir: Path, config: dict[str, Any], argv: list[str], runtime=None) -> None:
    """``config.yaml`` (with a ``runtime:`` section saying what was chosen on this machine and
    why; it is read back as information only), ``command.txt`` and ``system_info.txt``."""
    import yaml

    from ..config import RUNTIME_KEY
    from ..io import atomic_write_text
    from ..system import system_info

    if runtime is not None:
        config = {**config, RUNTIME_KEY: runtime.to_dict()}
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    atomic_write_text(run_dir / "command.txt", shlex.join(["blip-rl", *argv]) + "\n")
    if runtime is not None:
        atomic_write_text(run_dir / "system_info.txt", system_info(runtime))


def threads_flag(args: argparse.Namespace) -> int | None:
    """``--threads N`` (N >= 1), or None when it was not given."""
    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be at least 1, got {threads}; leave it out to use every usable core")
    return threads


def precision_flag(args: argparse.Namespace) -> str | None:
    """``--precision``, with ``--fast`` as an alias of ``--precision bf16``."""
    if getattr(args, "fast", None):
        if args.precision not in (None, "bf16"):
            raise UserError(f"--fast means --precision bf16; drop one of --fast and --precision {args.precision}")
        return "bf16"
    return args.precision


def resolve_runtime_or_exit(*, device: str, precision: str, threads: int | None, n_envs: int, workload=None,
                            recalibrate: bool = False):
    """:func:`blip_rl.system.resolve_runtime` for a command: says on stderr when a calibration
    starts (seconds, once per machine) and prints each warning once, on stderr.

    :param workload: the network ``auto`` calibrates (:func:`blip_rl.agents.calibration.update_workload`).
    """
    from ..system import resolve_runtime

    def calibrating(line: str) -> None:
        print(f"blip-rl: {line}", file=sys.stderr, flush=True)

    runtime = resolve_runtime(device=device, precision=precision, threads=threads or 0, n_envs=n_envs,
                              workload=workload, recalibrate=recalibrate, on_calibrate=calibrating)
    for warning in runtime.warnings:
        print(f"blip-rl: warning: {warning}", file=sys.stderr)
    return runtime


def run_workload(cfg=None):
    """The update an Atari run with ``cfg`` makes, for ``--precision auto``'s calibration."""
    from ..agents.calibration import update_workload

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

    from ..agents.checkpoint import read_checkpoint
    from ..config import TrainConfig, merge
    from ..system import bf16_support, resolve_device, usable_cores
    from ..threads import env_thread_cap

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
    precision = precision_flag(args)
    follow_precision = precision is None and same_kind and trained.get("precision") in ("fp32", "bf16") and (
        trained["precision"] == "fp32" or bf16_support(here)[0])
    if follow_precision:
        precision = trained["precision"]
    threads = threads_flag(args)
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


def dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def add_config_flags(parser: argparse.ArgumentParser, *, skip: tuple[str, ...] = ()) -> None:
    """Add :data:`CONFIG_FLAGS` (but ``skip``), ``--config``, ``--set`` and ``--fast``."""
    from ..core import METHODS  # the registry, never a list of names

    parser.add_argument("--config", help="YAML config (e.g. configs/atari6.yaml, configs/quick.yaml)")
    for flag, _key, kind, help_text in CONFIG_FLAGS:
        if flag not in skip:
            parser.add_argument(flag, type=kind, help=help_text.format(methods=", ".join(sorted(METHODS))))
    parser.add_argument("--fast", action="store_const", const=True, help="alias of --precision bf16")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="any config key, e.g. ppo.n_steps=128")


def given_config_flags(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """The config flags given on this command line, as ``(flag, value)``."""
    given = [(flag, getattr(args, dest(flag), None)) for flag, *_ in CONFIG_FLAGS]
    given += [("--config", args.config), ("--fast", args.fast)]
    given += [("--set", item) for item in args.set or []]
    return [(flag, value) for flag, value in given if value not in (None, False)]


def train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides = {key: getattr(args, dest(flag), None) for flag, key, *_ in CONFIG_FLAGS
                 if getattr(args, dest(flag), None) is not None}
    if precision_flag(args) is not None:
        overrides["precision"] = precision_flag(args)
    if threads_flag(args) is not None:
        overrides["threads"] = threads_flag(args)
    from ..config import parse_assignments

    overrides.update(parse_assignments(args.set))
    return overrides

