"""What the commands share: one help format, the config flags (declared once) and the runtime
flags (device, precision, threads; resolved by :mod:`blip_rl.runtime`).

Library code never prints; the command modules do. Every user error ends in one line on stderr
and exit code 2 (:data:`EXIT_USAGE`), never a traceback.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import UserError

__all__ = ["EXIT_USAGE", "CONFIG_FLAGS", "HelpFormatter", "Parser", "add_config_flags", "checkpoint_runtime",
           "given_config_flags", "precision_flag", "threads_flag", "train_overrides"]

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


def checkpoint_runtime(path: str | Path, args: argparse.Namespace, *, n_envs: int):
    """:func:`blip_rl.runtime.checkpoint_runtime` with ``--device``, ``--precision`` (``--fast``) and ``--threads``."""
    from ..runtime import checkpoint_runtime as resolve

    return resolve(path, device=getattr(args, "device", None), precision=precision_flag(args),
                   threads=threads_flag(args), n_envs=n_envs)


#: The flags that set a run's config, declared once: ``train`` adds them all, ``sweep`` adds
#: those it does not vary itself and passes the given ones to every run, and ``--resume``
#: refuses them (a run goes on with its own config.yaml). (flag, config key, type, help)
CONFIG_FLAGS: tuple[tuple[str, str, type, str], ...] = (
    ("--games", "games", str, "comma-separated games, e.g. kungfu,boxing (see `blip-rl games`)"),
    ("--method", "method", str, "a registered method ({methods}) or package.module:Class "
                                "(options: --set methods.NAME.KEY=VALUE)"),
    ("--steps-per-game", "steps_per_game", int, "env steps per game"),
    ("--n-envs", "env.n_envs", int, "parallel environments"),
    ("--seed", "seed", int, "seed of the run"),
    ("--device", "device", str, "auto | cpu | cuda"),
    ("--precision", "precision", str, "auto (default: bf16 only where native and faster) | fp32 | bf16"),
    ("--backend", "env.backend", str, "env backend: ale | sb3"),
    ("--eval-every", "eval.every", int, "env steps between evaluations of all learned games"),
    ("--eval-episodes", "eval.episodes", int, "evaluation games per learned game"),
    ("--f-prior", "methods.blip.f_prior", float, "BLIP's F_prior"),
    ("--ig-rule", "methods.blip.ig_rule", str, "paper | official"),
    ("--wandb", "wandb.project", str, "mirror the run to this Weights & Biases project (the wandb extra; "
                                      "WANDB_MODE=offline works without a network)"),
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

