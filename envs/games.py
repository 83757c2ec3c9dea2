"""Registry of the Atari games used by blip-rl, with reference scores.

The six games of the BLIP paper (Shi et al., CVPR 2021, Sec. 5.3) are registered with their
reference scores; any other ALE game can still be named: :func:`get_game` builds its
:class:`Game` from ale-py's ROM list (reference scores ``None``).

Every score here is a *raw game score*: the undiscounted, unclipped sum of the game's own
rewards over one full game (all lives), as shown on the Atari screen.
"""
from __future__ import annotations

from blip_rl.errors import UserError

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Game",
    "GAMES",
    "PAPER_GAMES",
    "get_game",
    "parse_games",
    "normalize_score",
    "list_games",
]


@dataclass(frozen=True)
class Game:
    """One Atari game and its reference scores.

    Attributes:
        name: short name used on the command line and in logs, e.g. ``"kungfu"``.
        title: human-readable title, e.g. ``"Kung Fu Master"``.
        rom: ale-py ROM id (snake_case), e.g. ``"kung_fu_master"``; what
            ``ale_py.roms.get_rom_path`` and ``AtariVectorEnv`` take.
        gym_id: Gymnasium id of the ALE v5 environment, e.g. ``"ALE/KungFuMaster-v5"``.
        n_actions: size of the game's *minimal* action set (ALE ``getMinimalActionSet``), which
            is the ``Discrete`` action space every env of this package uses.
        random_score: mean raw game score of a uniformly random policy (points), or ``None``.
        human_score: mean raw game score of a professional human tester (points), or ``None``.
        ppo_score: raw game score PPO reaches after 40M frames (10M agent steps), from
            Schulman et al. 2017 (points), or ``None``; the BLIP paper's normaliser.
    """

    name: str
    title: str
    rom: str
    gym_id: str
    n_actions: int
    random_score: float | None = None
    human_score: float | None = None
    ppo_score: float | None = None


# Reference scores (raw game points).
#
# random_score, human_score: the standard random / human table of Mnih et al. 2015 (Nature,
#   "Human-level control through deep reinforcement learning"), the one used for human-normalised
#   scores (also reprinted in the appendix of Badia et al. 2020, Agent57). Numbers copied from
#   google-deepmind/dqn_zoo, dqn_zoo/atari_data.py (`_ATARI_DATA`: (random, human) per game);
#   the random column agrees with google-research/reincarnating_rl, reincarnating_rl/atari_scores.py.
# ppo_score: Schulman et al. 2017, "Proximal Policy Optimization Algorithms" (arXiv:1707.06347),
#   Table 6, PPO column (mean episode reward over the last 100 episodes of training, 40M frames).
#   Numbers taken from the per-game pages of seungjaeryanlee/endtoend.ai
#   (_pages/envs/gym/atari/{kung-fu-master,boxing,james-bond,krull,river-raid,space-invaders}.md),
#   which cite that table; they were not checked against the paper's PDF itself.
_PAPER_REGISTRY: tuple[Game, ...] = (
    Game("kungfu", "Kung Fu Master", "kung_fu_master", "ALE/KungFuMaster-v5", 14,
         random_score=258.5, human_score=22736.3, ppo_score=23310.3),
    Game("boxing", "Boxing", "boxing", "ALE/Boxing-v5", 18,
         random_score=0.1, human_score=12.1, ppo_score=94.6),
    Game("jamesbond", "James Bond", "jamesbond", "ALE/Jamesbond-v5", 18,
         random_score=29.0, human_score=302.8, ppo_score=560.7),
    Game("krull", "Krull", "krull", "ALE/Krull-v5", 18,
         random_score=1598.0, human_score=2665.5, ppo_score=7942.3),
    Game("riverraid", "River Raid", "riverraid", "ALE/Riverraid-v5", 18,
         random_score=1338.5, human_score=17118.0, ppo_score=8393.6),
    Game("spaceinvaders", "Space Invaders", "space_invaders", "ALE/SpaceInvaders-v5", 6,
         random_score=148.0, human_score=1668.7, ppo_score=942.5),
)

#: The six games of the BLIP paper, keyed by short name.
GAMES: dict[str, Game] = {g.name: g for g in _PAPER_REGISTRY}

#: The six games in the order the BLIP paper learns them.
PAPER_GAMES: tuple[Game, ...] = _PAPER_REGISTRY

# ROMs that ale-py ships but that have no single-player mode (no ALE v5 id is registered).
_MULTIPLAYER_ONLY = frozenset({"combat", "joust", "maze_craze", "warlords"})

# Minimal-action-set sizes of every single-player ROM, as ale-py 0.12.1 reports them. Loading a
# ROM to ask takes ~0.1 s, so listing all ~100 games would take ~10 s; this snapshot is used only
# when the installed ale-py is that version (tests check it against ale-py), otherwise the ROM is
# loaded and asked.
_SNAPSHOT_ALE_VERSION = "0.12.1"
_MINIMAL_ACTIONS_SNAPSHOT: dict[str, int] = {
    "adventure": 18, "air_raid": 6, "alien": 18, "amidar": 10, "assault": 7, "asterix": 9,
    "asteroids": 14, "atlantis": 4, "atlantis2": 4, "backgammon": 3, "bank_heist": 18,
    "basic_math": 6, "battle_zone": 18, "beam_rider": 9, "berzerk": 18, "blackjack": 4,
    "bowling": 6, "boxing": 18, "breakout": 4, "carnival": 6, "casino": 4, "centipede": 18,
    "chopper_command": 18, "crazy_climber": 9, "crossbow": 18, "darkchambers": 18, "defender": 18,
    "demon_attack": 6, "donkey_kong": 18, "double_dunk": 18, "earthworld": 18,
    "elevator_action": 18, "enduro": 9, "entombed": 18, "et": 18, "fishing_derby": 18,
    "flag_capture": 18, "freeway": 3, "frogger": 5, "frostbite": 18, "galaxian": 6, "gopher": 8,
    "gravitar": 18, "hangman": 18, "haunted_house": 18, "hero": 18, "human_cannonball": 18,
    "ice_hockey": 18, "jamesbond": 18, "journey_escape": 16, "kaboom": 4, "kangaroo": 18,
    "keystone_kapers": 14, "king_kong": 6, "klax": 18, "koolaid": 9, "krull": 18,
    "kung_fu_master": 14, "laser_gates": 18, "lost_luggage": 9, "mario_bros": 18,
    "miniature_golf": 18, "montezuma_revenge": 18, "mr_do": 10, "ms_pacman": 9,
    "name_this_game": 6, "othello": 10, "pacman": 5, "phoenix": 8, "pitfall": 18, "pitfall2": 18,
    "pong": 6, "pooyan": 6, "private_eye": 18, "qbert": 6, "riverraid": 18, "road_runner": 18,
    "robotank": 18, "seaquest": 18, "sir_lancelot": 6, "skiing": 3, "solaris": 18,
    "space_invaders": 6, "space_war": 18, "star_gunner": 18, "superman": 18, "surround": 5,
    "tennis": 18, "tetris": 5, "tic_tac_toe_3d": 10, "time_pilot": 10, "trondead": 18,
    "turmoil": 12, "tutankham": 8, "up_n_down": 6, "venture": 18, "video_checkers": 5,
    "video_chess": 10, "video_cube": 18, "video_pinball": 9, "wizard_of_wor": 10,
    "word_zapper": 18, "yars_revenge": 18, "zaxxon": 18,
}


def _key(text: str) -> str:
    """Normalise a game name for lookup: drop ``ALE/``, ``-vN``, ``NoFrameskip``, case, punctuation."""
    s = text.strip()
    s = re.sub(r"^ALE/", "", s, flags=re.IGNORECASE)
    s = re.sub(r"-v\d+$", "", s, flags=re.IGNORECASE)
    s = re.sub(r"(NoFrameskip|Deterministic)$", "", s, flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9]", "", s.lower())


@functools.lru_cache(maxsize=1)
def _all_roms() -> tuple[str, ...]:
    """Single-player ROM ids that ale-py ships, sorted."""
    from ale_py import roms

    return tuple(sorted(r for r in roms.get_all_rom_ids() if r not in _MULTIPLAYER_ONLY))


@functools.lru_cache(maxsize=None)
def _load_minimal_action_count(rom: str) -> int:
    """Size of ``rom``'s minimal action set, asked from ale-py by loading the ROM (~0.1 s, cached)."""
    import ale_py
    from ale_py import roms

    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    ale = ale_py.ALEInterface()
    ale.loadROM(roms.get_rom_path(rom))
    return len(ale.getMinimalActionSet())


def _minimal_action_count(rom: str) -> int:
    import ale_py

    if ale_py.__version__ == _SNAPSHOT_ALE_VERSION and rom in _MINIMAL_ACTIONS_SNAPSHOT:
        return _MINIMAL_ACTIONS_SNAPSHOT[rom]
    return _load_minimal_action_count(rom)


@functools.lru_cache(maxsize=None)
def _game_from_rom(rom: str) -> Game:
    """A :class:`Game` for an ALE ROM outside the registry (reference scores ``None``)."""
    for game in PAPER_GAMES:
        if game.rom == rom:
            return game
    camel = rom.title().replace("_", "")  # same rule as ale_py.registration.rom_id_to_name
    return Game(
        name=rom.replace("_", ""),
        title=rom.replace("_", " ").title(),
        rom=rom,
        gym_id=f"ALE/{camel}-v5",
        n_actions=_minimal_action_count(rom),
    )


def _registry_aliases() -> dict[str, Game]:
    aliases: dict[str, Game] = {}
    for game in PAPER_GAMES:
        for alias in (game.name, game.title, game.rom, game.gym_id):
            aliases[_key(alias)] = game
    return aliases


_ALIASES = _registry_aliases()


def get_game(name: str) -> Game:
    """Look up a game by short name, title, ROM id, CamelCase name or gym id (any case).

    ``"kungfu"``, ``"Kung Fu Master"``, ``"kung_fu_master"``, ``"KungFuMaster"`` and
    ``"ALE/KungFuMaster-v5"`` all give the registry's Kung Fu Master. Any other single-player ALE
    game works too (``"pong"``, ``"ALE/Pong-v5"``, ``"MsPacman"``): its :class:`Game` is built from
    ale-py (``n_actions`` from the minimal action set) with all reference scores ``None``.

    Raises:
        ValueError: the name matches no ALE game.
    """
    if not isinstance(name, str) or not name.strip():
        raise UserError(f"give a game name, e.g. 'kungfu'; got {name!r}")
    key = _key(name)
    if key in _ALIASES:
        return _ALIASES[key]
    for rom in _all_roms():
        if rom.replace("_", "") == key:
            return _game_from_rom(rom)
    raise UserError(
        f"unknown game {name!r}. The paper's games are: {', '.join(GAMES)}; any ALE game also works "
        "by its ROM id, CamelCase name or gym id (e.g. 'pong', 'MsPacman', 'ALE/Pong-v5'). "
        "Run `blip-rl games` to list them all."
    )


def parse_games(spec: str | Sequence[str]) -> list[Game]:
    """Parse a game list such as ``"kungfu,boxing"`` (or a list of names) into games, in order.

    Items are separated by commas (list items may contain commas too); blanks are ignored.

    Raises:
        ValueError: no game given, an unknown game, or a game named twice.
    """
    items = [spec] if isinstance(spec, str) else list(spec)
    names = [part.strip() for item in items for part in str(item).split(",") if part.strip()]
    if not names:
        raise UserError("give at least one game, e.g. --games kungfu,boxing")
    games: list[Game] = []
    for name in names:
        game = get_game(name)
        if game in games:
            raise UserError(f"game {game.name!r} is named twice (as {name!r}); name each game once")
        games.append(game)
    return games


def normalize_score(game: Game | str, score: float) -> float | None:
    """Map a raw game score onto [0, 1] the way the BLIP paper's Fig. 4 does.

    ``(score - random_score) / (reference - random_score)`` clipped to ``[0, 1]``, where the
    reference is ``ppo_score`` (PPO after 40M frames, the paper's normaliser) or, if that is
    ``None``, ``human_score``. Returns ``None`` when the game has no ``random_score`` or neither
    reference. ``game`` may be a :class:`Game` or a name :func:`get_game` accepts.
    """
    g = game if isinstance(game, Game) else get_game(game)
    reference = g.ppo_score if g.ppo_score is not None else g.human_score
    if reference is None or g.random_score is None or reference == g.random_score:
        return None
    value = (float(score) - g.random_score) / (reference - g.random_score)
    return float(min(1.0, max(0.0, value)))


def list_games() -> list[Game]:
    """Every game :func:`get_game` accepts: the paper's six in paper order, then the other ALE
    single-player games sorted by ROM id."""
    others = [_game_from_rom(rom) for rom in _all_roms() if rom not in {g.rom for g in PAPER_GAMES}]
    return list(PAPER_GAMES) + others
