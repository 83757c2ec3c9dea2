"""``blip-rl export``: one learned game of a checkpoint as a stable-baselines3 PPO zip and its
model card."""
from __future__ import annotations

import argparse

__all__ = ["register"]


def cmd_export(args: argparse.Namespace, argv: list[str]) -> int:
    """One learned game of an Atari checkpoint as a stable-baselines3 PPO zip and its model card."""
    from ..agents.export import export_game

    done = export_game(args.checkpoint, args.game, args.out, force=args.force)
    print(f"{done.game} (head {done.head} of {args.checkpoint}) -> {done.zip_path}: stable-baselines3 PPO, "
          f"{done.n_actions} actions; load it with PPO.load({str(done.zip_path)!r})")
    print(f"model card (where it came from, scores, env settings, how to evaluate it): {done.card_path}")
    return 0



def register(sub) -> None:
    """Add ``export`` to the ``blip-rl`` sub-commands."""
    x = sub.add_parser("export", help="write a learned game as a stable-baselines3 PPO zip, with a model card")
    x.add_argument("checkpoint", help="a checkpoint: RUN_DIR/checkpoints/<k>_<game>.pt or latest.pt")
    x.add_argument("--game", required=True, help="the game to export, one the checkpoint has learned")
    x.add_argument("--out", required=True, help="the zip to write (.zip is appended to a name without suffix, as "
                                                "SB3 does); the model card goes beside it with the suffix .md")
    x.add_argument("--force", action="store_true", help="overwrite an existing zip and model card")
    x.set_defaults(func=cmd_export)
