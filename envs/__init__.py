"""Environment families for blip-rl (installed as ``blip_rl.envs``).

* :mod:`.family`: the interface (``EnvFamily``), its registry (``register_family``,
  ``families``, ``family_of``) and task parsing (``get_task``, ``parse_tasks``) for every
  family; :mod:`.minatar` (MinAtar) and :mod:`.gym` (any Gymnasium id, ``gym:ENV_ID``).
* :mod:`.games`: the Atari family and its game registry (``Game``, ``GAMES``, ``PAPER_GAMES``, ``ATARI57``,
  ``get_game``, ``parse_games``, ``game_modes``, ``normalize_score``, ``NORMALIZATIONS``,
  ``missing_reference``, ``list_games``); light, imports only ale-py.
* :mod:`.atari`: ``make_vec_env`` / ``evaluate_policy`` (SB3 ``VecEnv``s over ale-py's native
  vector env or SB3's Atari wrappers). Imported on first use, since it pulls in SB3 and torch.

This package knows nothing of agents: it imports gymnasium, ale-py, numpy and SB3's VecEnv API.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .family import EnvFamily, families, family_of, get_task, parse_tasks, register_family
from .games import (
    ATARI57,
    GAMES,
    NORMALIZATIONS,
    PAPER_GAMES,
    Game,
    atari57_games,
    game_modes,
    get_game,
    list_games,
    missing_reference,
    normalize_score,
    parse_games,
)

if TYPE_CHECKING:  # pragma: no cover
    from .atari import (
        BACKENDS,
        AtariSettings,
        AtariVecEnv,
        BackendFallbackWarning,
        Episodes,
        evaluate_episodes,
        evaluate_policy,
        make_vec_env,
        needs_mode_backend,
    )

__all__ = [
    "EnvFamily",
    "families",
    "family_of",
    "get_task",
    "parse_tasks",
    "register_family",
    "Game",
    "GAMES",
    "PAPER_GAMES",
    "ATARI57",
    "NORMALIZATIONS",
    "atari57_games",
    "get_game",
    "parse_games",
    "game_modes",
    "normalize_score",
    "missing_reference",
    "list_games",
    "AtariVecEnv",
    "AtariSettings",
    "BACKENDS",
    "BackendFallbackWarning",
    "make_vec_env",
    "needs_mode_backend",
    "Episodes",
    "evaluate_episodes",
    "evaluate_policy",
]

_LAZY = {"AtariVecEnv", "AtariSettings", "BACKENDS", "BackendFallbackWarning", "Episodes", "make_vec_env",
         "needs_mode_backend", "evaluate_episodes", "evaluate_policy"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import atari

        return getattr(atari, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
