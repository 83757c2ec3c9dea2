"""Registry of the Atari games used by blip-rl, with reference scores.

Every game of the standard Atari-57 benchmark is registered with the random and human scores of
Mnih et al. 2015, and with the PPO score of Schulman et al. 2017 for the 49 games that paper
reports; the six games of the BLIP paper (Shi et al., CVPR 2021, Sec. 5.3) come first, in the
order the paper learns them. Any other single-player ALE game can still be named:
:func:`get_game` builds its :class:`Game` from ale-py's ROM list (reference scores ``None``).

A game *mode* or *difficulty* (ALE's ``setMode`` / ``setDifficulty``, Machado et al. 2018) makes
a task of its own: ``"spaceinvaders:mode=4"`` (also accepted as its name,
``"spaceinvaders-mode4"``) is a :class:`Game` with ``mode=4``. The reference scores are
measured in each game's default mode and difficulty, so a variant that plays another mode or
difficulty has none (``None``): its normalized score is not defined.

Every score here is a *raw game score*: the undiscounted, unclipped sum of the game's own
rewards over one full game (all lives), as shown on the Atari screen.
"""
from __future__ import annotations

from blip_rl.errors import UserError

import dataclasses
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

__all__ = [
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
]


@dataclass(frozen=True)
class Game:
    """One Atari game (or one mode / difficulty of it) and its reference scores.

    Attributes:
        name: short name used on the command line, in logs, file names and TensorBoard tags,
            e.g. ``"kungfu"``, ``"spaceinvaders-mode4"``.
        title: human-readable title, e.g. ``"Kung Fu Master"``, ``"Space Invaders (mode 4)"``.
        rom: ale-py ROM id (snake_case), e.g. ``"kung_fu_master"``; what
            ``ale_py.roms.get_rom_path`` and ``AtariVectorEnv`` take.
        gym_id: Gymnasium id of the ALE v5 environment, e.g. ``"ALE/KungFuMaster-v5"``.
        n_actions: size of the game's *minimal* action set (ALE ``getMinimalActionSet``), which
            is the ``Discrete`` action space every env of this package uses.
        random_score: mean raw game score of a uniformly random policy (points), or ``None``.
        human_score: mean raw game score of a professional human tester (points), or ``None``.
        ppo_score: raw game score PPO reaches after 40M frames (10M agent steps), from
            Schulman et al. 2017 (points), or ``None``; the BLIP paper's normaliser.
        mode: ALE game mode to play (``None``: the ROM's default mode).
        difficulty: ALE game difficulty to play (``None``: the default difficulty).
    """

    name: str
    title: str
    rom: str
    gym_id: str
    n_actions: int
    random_score: float | None = None
    human_score: float | None = None
    ppo_score: float | None = None
    mode: int | None = None
    difficulty: int | None = None

    #: the environment family of every Game (:mod:`blip_rl.envs.family`)
    family: ClassVar[str] = "atari"

    @property
    def spec(self) -> str:
        """What parses back to this game (its name: names round-trip)."""
        return self.name


# Reference scores (raw game points), keyed by ale-py ROM id.
#
# random_score, human_score: the standard random / human table of Mnih et al. 2015 (Nature,
#   "Human-level control through deep reinforcement learning"), the one used for human-normalised
#   scores (also reprinted in the appendix of Badia et al. 2020, Agent57), for all 57 games.
#   Numbers copied from google-deepmind/dqn_zoo, dqn_zoo/atari_data.py (`_ATARI_DATA`: (random,
#   human) per game; its game keys are exactly ale-py's ROM ids). The random column agrees with
#   google-research/reincarnating_rl, reincarnating_rl/atari_scores.py.
_RANDOM_HUMAN: dict[str, tuple[float, float]] = {
    "alien": (227.8, 7127.7),
    "amidar": (5.8, 1719.5),
    "assault": (222.4, 742.0),
    "asterix": (210.0, 8503.3),
    "asteroids": (719.1, 47388.7),
    "atlantis": (12850.0, 29028.1),
    "bank_heist": (14.2, 753.1),
    "battle_zone": (2360.0, 37187.5),
    "beam_rider": (363.9, 16926.5),
    "berzerk": (123.7, 2630.4),
    "bowling": (23.1, 160.7),
    "boxing": (0.1, 12.1),
    "breakout": (1.7, 30.5),
    "centipede": (2090.9, 12017.0),
    "chopper_command": (811.0, 7387.8),
    "crazy_climber": (10780.5, 35829.4),
    "defender": (2874.5, 18688.9),
    "demon_attack": (152.1, 1971.0),
    "double_dunk": (-18.6, -16.4),
    "enduro": (0.0, 860.5),
    "fishing_derby": (-91.7, -38.7),
    "freeway": (0.0, 29.6),
    "frostbite": (65.2, 4334.7),
    "gopher": (257.6, 2412.5),
    "gravitar": (173.0, 3351.4),
    "hero": (1027.0, 30826.4),
    "ice_hockey": (-11.2, 0.9),
    "jamesbond": (29.0, 302.8),
    "kangaroo": (52.0, 3035.0),
    "krull": (1598.0, 2665.5),
    "kung_fu_master": (258.5, 22736.3),
    "montezuma_revenge": (0.0, 4753.3),
    "ms_pacman": (307.3, 6951.6),
    "name_this_game": (2292.3, 8049.0),
    "phoenix": (761.4, 7242.6),
    "pitfall": (-229.4, 6463.7),
    "pong": (-20.7, 14.6),
    "private_eye": (24.9, 69571.3),
    "qbert": (163.9, 13455.0),
    "riverraid": (1338.5, 17118.0),
    "road_runner": (11.5, 7845.0),
    "robotank": (2.2, 11.9),
    "seaquest": (68.4, 42054.7),
    "skiing": (-17098.1, -4336.9),
    "solaris": (1236.3, 12326.7),
    "space_invaders": (148.0, 1668.7),
    "star_gunner": (664.0, 10250.0),
    "surround": (-10.0, 6.5),
    "tennis": (-23.8, -8.3),
    "time_pilot": (3568.0, 5229.2),
    "tutankham": (11.4, 167.6),
    "up_n_down": (533.4, 11693.2),
    "venture": (0.0, 1187.5),
    # dqn_zoo notes that a random agent sometimes beats this human score under other protocols.
    "video_pinball": (16256.9, 17667.9),
    "wizard_of_wor": (563.5, 4756.5),
    "yars_revenge": (3092.9, 54576.9),
    "zaxxon": (32.5, 9173.3),
}

# ppo_score: Schulman et al. 2017, "Proximal Policy Optimization Algorithms" (arXiv:1707.06347),
#   Table 6, PPO column (mean episode reward over the last 100 episodes of training, 40M frames),
#   49 games. Numbers taken from the per-game pages of seungjaeryanlee/endtoend.ai
#   (_pages/envs/gym/atari/<game>.md, rows "PPO | Proximal Policy Optimization Algorithms"), which
#   cite that table; they were not checked against the paper's PDF itself. Table 6 has no row for
#   berzerk, defender, hero, phoenix, skiing, solaris, surround and yars_revenge (nor do those
#   pages): their ppo_score is None, and "ppo" normalization falls back to the human score.
_PPO: dict[str, float] = {
    "alien": 1850.3,
    "amidar": 674.6,
    "assault": 4971.9,
    "asterix": 4532.5,
    "asteroids": 2097.5,
    "atlantis": 2311815.0,
    "bank_heist": 1280.6,
    "battle_zone": 17366.7,
    "beam_rider": 1590.0,
    "bowling": 40.1,
    "boxing": 94.6,
    "breakout": 274.8,
    "centipede": 4386.4,
    "chopper_command": 3516.3,
    "crazy_climber": 110202.0,
    "demon_attack": 11378.4,
    "double_dunk": -14.9,
    "enduro": 758.3,
    "fishing_derby": 17.8,
    "freeway": 32.5,
    "frostbite": 314.2,
    "gopher": 2932.9,
    "gravitar": 737.2,
    "ice_hockey": -4.2,
    "jamesbond": 560.7,
    "kangaroo": 9928.7,
    "krull": 7942.3,
    "kung_fu_master": 23310.3,
    "montezuma_revenge": 42.0,
    "ms_pacman": 2096.5,
    "name_this_game": 6254.9,
    "pitfall": -32.9,
    "pong": 20.7,
    "private_eye": 69.5,
    "qbert": 14293.3,
    "riverraid": 8393.6,
    "road_runner": 25076.0,
    "robotank": 5.5,
    "seaquest": 1204.5,
    "space_invaders": 942.5,
    "star_gunner": 32689.0,
    "tennis": -14.8,
    "time_pilot": 4342.0,
    "tutankham": 254.4,
    "up_n_down": 95445.0,
    "venture": 0.0,
    "video_pinball": 37389.0,
    "wizard_of_wor": 4185.3,
    "zaxxon": 5008.7,
}

# The six games of the BLIP paper, with their short names and titles (scores from the tables
# above; n_actions as ale-py reports).
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

#: Normalizations :func:`normalize_score` knows: ``"ppo"`` (the BLIP paper's: PPO's score, else
#: the human score), ``"human"`` (human-normalized) and ``"none"`` (no normalized score).
from .family import NORMALIZATIONS, EnvFamily, register_family  # noqa: E402

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


#: ROM ids of the 57 games of the standard Atari-57 benchmark (those with random and human
#: scores), sorted; :func:`atari57_games` gives their :class:`Game`\ s.
ATARI57: tuple[str, ...] = tuple(sorted(_RANDOM_HUMAN))

_VARIANT_KEYS = ("mode", "difficulty")


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


def _ale_with_rom(rom: str):
    import ale_py
    from ale_py import roms

    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    ale = ale_py.ALEInterface()
    ale.loadROM(roms.get_rom_path(rom))
    return ale


@functools.lru_cache(maxsize=None)
def _load_minimal_action_count(rom: str) -> int:
    """Size of ``rom``'s minimal action set, asked from ale-py by loading the ROM (~0.1 s, cached)."""
    return len(_ale_with_rom(rom).getMinimalActionSet())


def _minimal_action_count(rom: str) -> int:
    import ale_py

    if ale_py.__version__ == _SNAPSHOT_ALE_VERSION and rom in _MINIMAL_ACTIONS_SNAPSHOT:
        return _MINIMAL_ACTIONS_SNAPSHOT[rom]
    return _load_minimal_action_count(rom)


@functools.lru_cache(maxsize=None)
def _rom_modes(rom: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    ale = _ale_with_rom(rom)
    return tuple(int(m) for m in ale.getAvailableModes()), tuple(int(d) for d in ale.getAvailableDifficulties())


def game_modes(game: Game | str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(modes, difficulties)`` ALE offers for ``game``'s ROM (``getAvailableModes`` /
    ``getAvailableDifficulties``; loads the ROM once, ~0.1 s, then cached). The first of each is
    the ROM's default (ALE's ``RomSettings::getDefaultMode``; difficulty 0)."""
    g = game if isinstance(game, Game) else get_game(game)
    return _rom_modes(g.rom)


@functools.lru_cache(maxsize=None)
def _game_from_rom(rom: str) -> Game:
    """The :class:`Game` of an ALE ROM: a paper game, an Atari-57 game (with its reference
    scores) or any other ROM (reference scores ``None``)."""
    for game in PAPER_GAMES:
        if game.rom == rom:
            return game
    camel = rom.title().replace("_", "")  # same rule as ale_py.registration.rom_id_to_name
    random_score, human_score = _RANDOM_HUMAN.get(rom, (None, None))
    return Game(
        name=rom.replace("_", ""),
        title=rom.replace("_", " ").title(),
        rom=rom,
        gym_id=f"ALE/{camel}-v5",
        n_actions=_minimal_action_count(rom),
        random_score=random_score,
        human_score=human_score,
        ppo_score=_PPO.get(rom),
    )


def atari57_games() -> list[Game]:
    """The 57 games of the Atari-57 benchmark, sorted by ROM id, with their reference scores."""
    return [_game_from_rom(rom) for rom in ATARI57]


def _registry_aliases() -> dict[str, Game]:
    aliases: dict[str, Game] = {}
    for game in PAPER_GAMES:
        for alias in (game.name, game.title, game.rom, game.gym_id):
            aliases[_key(alias)] = game
    return aliases


_ALIASES = _registry_aliases()


def _base_game(name: str, spec: str) -> Game:
    key = _key(name)
    if key in _ALIASES:
        return _ALIASES[key]
    for rom in _all_roms():
        if rom.replace("_", "") == key:
            return _game_from_rom(rom)
    import difflib

    names = {**{rom.replace("_", ""): rom for rom in _all_roms()}, **{k: g.name for k, g in _ALIASES.items()}}
    near = list(dict.fromkeys(names[k] for k in difflib.get_close_matches(key, list(names), n=3, cutoff=0.7)))
    raise UserError(
        f"unknown game {spec!r}" + (f"; did you mean {' or '.join(near)}?" if near else ".") +
        f" The paper's games are: {', '.join(GAMES)}; any ALE game also works "
        "by its ROM id, CamelCase name or gym id (e.g. 'pong', 'MsPacman', 'ALE/Pong-v5'). "
        "Run `blip-rl games` to list them all."
    )


_NAME_FORM = re.compile(r"^(?P<base>.+?)(?:-mode(?P<mode>\d+))?(?:-difficulty(?P<difficulty>\d+))?$", re.IGNORECASE)
_SETTING = re.compile(r"^(?P<key>[A-Za-z_]\w*)\s*=\s*(?P<value>[+-]?\d+)$")


def _split_spec(spec: str) -> tuple[str, int | None, int | None]:
    """``"freeway:mode=1:difficulty=1"`` or ``"freeway-mode1-difficulty1"`` -> ``("freeway", 1, 1)``."""
    text = spec.strip()
    if ":" not in text:
        m = _NAME_FORM.match(text)
        assert m is not None  # the pattern matches any non-empty text
        mode, difficulty = m.group("mode"), m.group("difficulty")
        return (m.group("base"), None if mode is None else int(mode),
                None if difficulty is None else int(difficulty))
    base, *settings = (part.strip() for part in text.split(":"))
    if not base:
        raise UserError(f"{spec!r}: give the game before its settings, e.g. 'spaceinvaders:mode=4'")
    values: dict[str, int] = {}
    for setting in settings:
        m = _SETTING.match(setting)
        if m is None:
            raise UserError(f"{spec!r}: cannot read {setting!r}; write game:mode=N or game:mode=N:difficulty=M "
                            "(N, M whole numbers)")
        key = m.group("key").lower()
        if key not in _VARIANT_KEYS:
            raise UserError(f"{spec!r}: unknown setting {m.group('key')!r}; a game takes only "
                            f"{' and '.join(_VARIANT_KEYS)} (e.g. 'spaceinvaders:mode=4:difficulty=1')")
        if key in values:
            raise UserError(f"{spec!r}: {key} is given twice; give it once")
        value = int(m.group("value"))
        if value < 0:
            raise UserError(f"{spec!r}: {key} must be 0 or more, got {value}")
        values[key] = value
    # The name form may carry settings too ("spaceinvaders-mode4:difficulty=1").
    base, mode, difficulty = _split_spec(base)
    for key, value in (("mode", mode), ("difficulty", difficulty)):
        if value is not None:
            if key in values and values[key] != value:
                raise UserError(f"{spec!r}: {key} is given twice ({value} and {values[key]}); give it once")
            values[key] = value
    return base, values.get("mode"), values.get("difficulty")


def _listing(values: Sequence[int]) -> str:
    return ", ".join(str(v) for v in values)


@functools.lru_cache(maxsize=None)
def _variant(base: Game, mode: int | None, difficulty: int | None) -> Game:
    """``base`` played in ``mode`` / ``difficulty`` (checked against ALE)."""
    modes, difficulties = _rom_modes(base.rom)
    if mode is not None and mode not in modes:
        raise UserError(f"{base.title} has no mode {mode}; ALE offers modes {_listing(modes)} "
                        f"(default {modes[0]})")
    if difficulty is not None and difficulty not in difficulties:
        raise UserError(f"{base.title} has no difficulty {difficulty}; ALE offers difficulties "
                        f"{_listing(difficulties)} (default {difficulties[0]})")
    name, details = base.name, []
    if mode is not None:
        name += f"-mode{mode}"
        details.append(f"mode {mode}")
    if difficulty is not None:
        name += f"-difficulty{difficulty}"
        details.append(f"difficulty {difficulty}")
    # The reference scores were measured in the default mode and difficulty; another mode plays
    # a different game (other enemies, speeds, rules), so they do not apply to it.
    if mode in (None, modes[0]) and difficulty in (None, difficulties[0]):
        return base  # the default mode and difficulty are the game itself (its name, its scores)
    return dataclasses.replace(base, name=name, title=f"{base.title} ({', '.join(details)})",
                               mode=mode, difficulty=difficulty, random_score=None, human_score=None,
                               ppo_score=None)


def get_game(name: str) -> Game:
    """Look up a game by short name, title, ROM id, CamelCase name or gym id (any case).

    ``"kungfu"``, ``"Kung Fu Master"``, ``"kung_fu_master"``, ``"KungFuMaster"`` and
    ``"ALE/KungFuMaster-v5"`` all give the registry's Kung Fu Master. Any other single-player ALE
    game works too (``"pong"``, ``"ALE/Pong-v5"``, ``"MsPacman"``): its :class:`Game` is built from
    ale-py (``n_actions`` from the minimal action set), with the Atari-57 reference scores where
    the game has them.

    A mode and/or difficulty may follow, as ``"spaceinvaders:mode=4"``,
    ``"freeway:mode=1:difficulty=1"`` or in the name form ``"spaceinvaders-mode4"``,
    ``"freeway-mode1-difficulty1"`` (the variant's ``name``, so names round-trip). The variant's
    reference scores are ``None`` unless it plays the default mode and difficulty.

    Raises:
        UserError: the name matches no ALE game, or names a mode / difficulty ALE does not
            offer for it (the message lists those it does), or an unknown setting.
    """
    if not isinstance(name, str) or not name.strip():
        raise UserError(f"give a game name, e.g. 'kungfu'; got {name!r}")
    base_name, mode, difficulty = _split_spec(name)
    base = _base_game(base_name, name)
    if mode is None and difficulty is None:
        return base
    return _variant(base, mode, difficulty)


def _task_key(game: Game) -> tuple[str, int | None, int | None]:
    """What a game plays: its ROM and its mode / difficulty, ``None`` for the default."""
    if game.mode is None and game.difficulty is None:
        return game.rom, None, None
    modes, difficulties = _rom_modes(game.rom)
    mode = None if game.mode in (None, modes[0]) else game.mode
    difficulty = None if game.difficulty in (None, difficulties[0]) else game.difficulty
    return game.rom, mode, difficulty


def parse_games(spec: str | Sequence[str]) -> list[Game]:
    """Parse a game list such as ``"kungfu,boxing"`` (or a list of names) into games, in order.

    Items are separated by commas (list items may contain commas too); blanks are ignored. An
    item may pick a mode / difficulty (``"spaceinvaders:mode=4"``, ``"spaceinvaders-mode4"``):
    two modes of one game are two tasks.

    Raises:
        UserError: no game given, an unknown game or mode, or one game (in one mode and
            difficulty) named twice.
    """
    items = [spec] if isinstance(spec, str) else list(spec)
    names = [part.strip() for item in items for part in str(item).split(",") if part.strip()]
    if not names:
        raise UserError("give at least one game, e.g. --games kungfu,boxing")
    games: list[Game] = []
    seen: dict[tuple[str, int | None, int | None], Game] = {}
    for name in names:
        game = get_game(name)
        key = _task_key(game)
        if key in seen:
            other = seen[key]
            same = "" if other.name == game.name else f" (same game as {other.name!r}: default mode and difficulty)"
            raise UserError(f"game {game.name!r} is named twice (as {name!r}){same}; name each game once")
        seen[key] = game
        games.append(game)
    return games


from .family import check_normalization as _check_normalization  # noqa: E402


def _reference(game: Game, normalization: str) -> float | None:
    """The score that maps to 1 under ``normalization``, or ``None`` (no normalized score)."""
    if normalization == "ppo":
        reference = game.ppo_score if game.ppo_score is not None else game.human_score
    elif normalization == "human":
        reference = game.human_score
    else:
        return None
    if reference is None or game.random_score is None or reference == game.random_score:
        return None
    return reference


def normalize_score(game: Game | str, score: float, normalization: str = "ppo") -> float | None:
    """Map a raw game score onto [0, 1]: ``(score - random_score) / (reference - random_score)``
    clipped to ``[0, 1]``.

    ``normalization`` picks the reference:

    * ``"ppo"`` (default; the BLIP paper's Fig. 4): ``ppo_score`` (PPO after 40M frames) or,
      if that is ``None``, ``human_score``;
    * ``"human"``: ``human_score`` (human-normalized score, clipped);
    * ``"none"``: no normalized score, always ``None``.

    Returns ``None`` when the game has no ``random_score`` or no reference. ``game`` may be a
    :class:`Game` or a name :func:`get_game` accepts.

    Raises:
        UserError: an unknown ``normalization`` (the message lists :data:`NORMALIZATIONS`).
    """
    normalization = _check_normalization(normalization)
    g = game if isinstance(game, Game) else get_game(game)
    reference = _reference(g, normalization)
    if reference is None:
        return None
    value = (float(score) - g.random_score) / (reference - g.random_score)
    return float(min(1.0, max(0.0, value)))


def missing_reference(games: Iterable[Game | str], normalization: str) -> list[Game]:
    """The games (in order) that get no normalized score under ``normalization``: no
    ``random_score`` or no reference score (e.g. a game outside Atari-57, or a non-default
    mode). Empty for ``"none"``, which normalizes nothing by choice.

    Raises:
        UserError: an unknown ``normalization``.
    """
    normalization = _check_normalization(normalization)
    out = [g if isinstance(g, Game) else get_game(g) for g in games]
    if normalization == "none":
        return []
    return [g for g in out if _reference(g, normalization) is None]


def list_games() -> list[Game]:
    """Every game :func:`get_game` accepts (default modes): the paper's six in paper order, then
    the other ALE single-player games sorted by ROM id (the Atari-57 ones with their scores)."""
    others = [_game_from_rom(rom) for rom in _all_roms() if rom not in {g.rom for g in PAPER_GAMES}]
    return list(PAPER_GAMES) + others


class AtariFamily(EnvFamily):
    """Atari 2600 games on ALE (:mod:`.atari`): every name :func:`get_game` accepts."""

    name = "atari"
    description = "Atari 2600 games on ALE, 84x84 grayscale frames (the paper's benchmark)"
    example = "kungfu"

    def owns(self, spec: str) -> bool:
        return True  # the fallback family: get() says when a name is no ALE game

    def get(self, spec: str) -> Game:
        return get_game(spec)

    def tasks(self) -> list[Game]:
        return list_games()

    def same_task(self, a: Game, b: Game) -> bool:
        return _task_key(a) == _task_key(b)

    def observation_space(self, task: Game, env_cfg):
        import numpy as np
        from gymnasium import spaces

        return spaces.Box(0, 255, (int(getattr(env_cfg, "frame_stack", 4)), 84, 84), np.uint8)

    def make_vec_env(self, task: Game, *, n_envs: int, seed: int, training: bool, env_cfg, num_threads: int = 0,
                     max_episode_steps: int | None = None):
        from .atari import AtariSettings, make_vec_env

        settings = AtariSettings.of(env_cfg)
        if max_episode_steps is not None:
            settings = settings.replace(max_episode_steps=max_episode_steps)
        return make_vec_env(task, n_envs=n_envs, seed=seed, training=training, settings=settings,
                            num_threads=num_threads)

    def reference(self, task: Game, normalization: str) -> tuple[float, float] | None:
        ref = _reference(task, _check_normalization(normalization))
        return None if ref is None else (float(task.random_score), float(ref))

    def normalize(self, task: Game, score: float, normalization: str) -> float | None:
        return normalize_score(task, score, normalization)

    def describe(self, task: Game) -> dict:
        return {"name": task.name, "title": task.title, "actions": task.n_actions, "random": task.random_score,
                "human": task.human_score, "ppo": task.ppo_score}

    def screens(self, task: Game, env_cfg, seed: int, env):
        from .atari import atari_screens

        return atari_screens(task, env_cfg, seed, env)

    def card_settings(self, task: Game, env_cfg) -> dict:
        settings = {"backend": env_cfg.backend, "frame_stack": env_cfg.frame_stack, "frameskip": env_cfg.frameskip,
                    "noop_max": env_cfg.noop_max, "repeat_action_probability": env_cfg.repeat_action_probability,
                    "full_action_space": False, "terminal_on_life_loss": False, "clip_reward": False,
                    "train_max_episode_steps": env_cfg.max_episode_steps, "mode": task.mode,
                    "difficulty": task.difficulty}
        # A game mode / difficulty is an ALE setting of its own; the native "ale" backend cannot
        # set one, so such games were played by the "sb3" backend.
        if task.mode is not None or task.difficulty is not None:
            settings["backend"] = "sb3"
        return settings

    def model_card(self, task: Game, ev: dict) -> dict:
        frames = ev["max_episode_steps"] * ev["frameskip"]
        variant = "".join(f", {k}={ev[k]}" for k in ("mode", "difficulty") if ev.get(k) is not None)
        code = f'''import ale_py
import gymnasium as gym
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.vec_env import VecFrameStack

gym.register_envs(ale_py)
env = make_atari_env(
    {task.gym_id!r}, n_envs={ev["n_envs"]}, seed={ev["seed"]},
    env_kwargs=dict(frameskip=1, repeat_action_probability={ev["repeat_action_probability"]!r},
                    full_action_space=False, max_num_frames_per_episode={frames}{variant}),
    wrapper_kwargs=dict(noop_max={ev["noop_max"]}, frame_skip={ev["frameskip"]}, screen_size=84,
                        terminal_on_life_loss=False, clip_reward=False),
)
env = VecFrameStack(env, n_stack={ev["frame_stack"]})  # channel-last frames: predict() transposes them
'''
        fs = ev["frame_stack"]

        def fmt(x):
            return "-" if x is None else str(x)

        notes = [
            f"observations: uint8 frames, 84x84 grayscale, {fs} stacked; the model's observation space is "
            f"channel-first `Box(0, 255, ({fs}, 84, 84), uint8)`, and `predict` transposes the channel-last "
            f"`(84, 84, {fs})` frames of `make_atari_env` + `VecFrameStack` itself",
            f"actions: `Discrete({task.n_actions})`, the game's minimal action set (`full_action_space=False`)",
            f"frameskip {ev['frameskip']} (action repeated, max over the last two frames; the ALE env itself "
            "with `frameskip=1`)",
            f"up to {ev['noop_max']} no-op frames at reset, then FIRE where the game has it",
            f"sticky actions: `repeat_action_probability={ev['repeat_action_probability']}`",
            f"game mode {fmt(ev.get('mode'))}, difficulty {fmt(ev.get('difficulty'))} (`-`: the ROM's default)",
            "evaluation plays full games: `terminal_on_life_loss=False`, raw (unclipped) rewards "
            "(training ended episodes at each life loss and clipped rewards to their sign)",
            f"games cut after {ev['max_episode_steps']:,} agent steps in evaluation "
            f"(`max_num_frames_per_episode={frames}`; training: {ev['train_max_episode_steps']:,})",
        ]
        if ev["backend"] == "sb3":
            notes.append("the run played SB3's own Atari wrappers (`env.backend: sb3`): the code below plays the "
                         "same games as `blip-rl eval`, score for score")
        else:
            notes.append(f"the run played ale-py's native vector env (`env.backend: {ev['backend']}`): SB3's "
                         "`AtariWrapper` below preprocesses the same way in all that matters but not bit for bit "
                         "(FIRE then UP at reset, a no-op and FIRE after each lost life, OpenCV's grayscale), so "
                         "its scores follow the same distribution as `blip-rl eval`'s without being equal game by "
                         "game")
        return {"code": code, "notes": notes, "observations": f"Box(0, 255, ({fs}, 84, 84), uint8)"}


ATARI = register_family(AtariFamily())
