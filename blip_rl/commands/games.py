"""``blip-rl games``: every task of every environment family, with its reference scores."""
from __future__ import annotations

import argparse

__all__ = ["register"]


def cmd_games(args: argparse.Namespace, argv: list[str]) -> int:
    from ..envs import ATARI57, list_games
    from ..envs.family import families

    def fmt(x):
        return f"{x:>10.1f}" if x is not None else " " * 10

    print(f"{'family':8s} {'name':22s} {'title':24s} {'actions':>7s} {'random':>10s} {'human':>10s} {'ppo':>10s}  id")
    for fam in families():
        for task in fam.tasks():
            d = fam.describe(task)
            print(f"{fam.name:8s} {task.name:22s} {task.title:24s} {task.n_actions:7d} {fmt(d.get('random'))} "
                  f"{fmt(d.get('human'))} {fmt(d.get('ppo'))}  {getattr(task, 'gym_id', '')}")
    print("\nFamilies: " + "; ".join(f"{f.name}: {f.description} (e.g. {f.example})" for f in families()))
    games = list_games()
    n57 = sum(g.rom in ATARI57 for g in games)
    n_ppo = sum(g.ppo_score is not None for g in games)
    print(f"\n{len(games)} single-player ALE games; {n57} of the Atari-57 benchmark have random and human "
          f"scores (Mnih et al. 2015), {n_ppo} a PPO score (Schulman et al. 2017, Table 6).")
    print("Actions: size of the minimal action set. Scores are raw game points, in the default mode.")
    print("Pick a mode or difficulty with game:mode=N:difficulty=M (or its name, e.g. spaceinvaders-mode4);")
    print("a non-default mode has no reference scores.")
    return 0



def register(sub) -> None:
    """Add ``games`` to the ``blip-rl`` sub-commands."""
    g = sub.add_parser("games", help="list the game registry")
    g.set_defaults(func=cmd_games)
