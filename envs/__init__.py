"""Atari environments for blip-rl (installed as ``blip_rl.envs``).

* :mod:`.games`: the game registry (``Game``, ``GAMES``, ``PAPER_GAMES``, ``get_game``,
  ``parse_games``, ``normalize_score``, ``list_games``); light, imports only ale-py.
* :mod:`.atari`: ``make_vec_env`` / ``evaluate_policy`` (SB3 ``VecEnv``s over ale-py's native
  vector env or SB3's Atari wrappers). Imported on first use, since it pulls in SB3 and torch.

This package knows nothing of agents: it imports gymnasium, ale-py, numpy and SB3's VecEnv API.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .games import GAMES, PAPER_GAMES, Game, get_game, list_games, normalize_score, parse_games

if TYPE_CHECKING:  # pragma: no cover
    from .atari import BACKENDS, AtariSettings, AtariVecEnv, Episodes, evaluate_episodes, evaluate_policy, make_vec_env

__all__ = [
    "Game",
    "GAMES",
    "PAPER_GAMES",
    "get_game",
    "parse_games",
    "normalize_score",
    "list_games",
    "AtariVecEnv",
    "AtariSettings",
    "BACKENDS",
    "make_vec_env",
    "Episodes",
    "evaluate_episodes",
    "evaluate_policy",
]

_LAZY = {"AtariVecEnv", "AtariSettings", "BACKENDS", "Episodes", "make_vec_env", "evaluate_episodes", "evaluate_policy"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import atari

        return getattr(atari, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
