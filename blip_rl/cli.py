"""The ``blip-rl`` command line: a dispatcher. Each command lives in its own module and adds its
sub-command with ``register(subparsers)`` (:data:`COMMANDS`); what they share is in
:mod:`blip_rl.commands.common`. No module imported here imports this one back.

Every user error ends in one line on stderr and exit code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .commands.common import EXIT_USAGE, Parser
from .errors import UserError

__all__ = ["COMMANDS", "build_parser", "main"]

#: The modules of the sub-commands, in the order ``blip-rl --help`` lists them. A module that is
#: not installed (an optional part) is left out; its own missing dependencies are raised.
COMMANDS = ("commands.train", "commands.evaluate", "commands.info", "commands.export", "commands.games",
            "commands.toy", "classification.cli", "sweep", "report", "record")


def _split_list_hint(argv: list[str], extra: list[str]) -> str:
    """For ``--games kungfu, boxing``: a word after one that ends in a comma was meant to be in it."""
    for word in extra:
        i = argv.index(word)
        if i > 0 and argv[i - 1].endswith(","):
            return (f"; {argv[i - 1]!r} ends with a comma: a space after it splits the list; write "
                    f"{argv[i - 1]}{word} (no spaces) or quote it")
    return ""


def build_parser() -> argparse.ArgumentParser:
    """``blip-rl`` with every sub-command of :data:`COMMANDS`."""
    parser = Parser(prog="blip-rl", description="Continual RL on Atari with BLIP.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.subcommands = sub.choices  # type: ignore[attr-defined]  (main's errors name the subcommand)
    for module in COMMANDS:  # each imports its heavy or optional dependencies lazily
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
