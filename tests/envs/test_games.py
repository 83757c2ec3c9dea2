"""Tests of the game registry (blip_rl.envs.games)."""
from __future__ import annotations

import dataclasses

import ale_py
import pytest
from hypothesis import given
from hypothesis import strategies as st

from blip_rl.envs import games as games_mod
from blip_rl.envs.games import (
    GAMES,
    PAPER_GAMES,
    Game,
    get_game,
    list_games,
    normalize_score,
    parse_games,
)

PAPER_ORDER = ["kungfu", "boxing", "jamesbond", "krull", "riverraid", "spaceinvaders"]


def ale_minimal_actions(rom: str) -> int:
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    ale = ale_py.ALEInterface()
    ale.loadROM(ale_py.roms.get_rom_path(rom))
    return len(ale.getMinimalActionSet())


def test_registry_has_the_six_paper_games_in_order():
    assert [g.name for g in PAPER_GAMES] == PAPER_ORDER
    assert list(GAMES) == PAPER_ORDER
    assert all(GAMES[g.name] is g for g in PAPER_GAMES)
    expected = {"kungfu": 14, "boxing": 18, "jamesbond": 18, "krull": 18, "riverraid": 18, "spaceinvaders": 6}
    assert {g.name: g.n_actions for g in PAPER_GAMES} == expected


@pytest.mark.parametrize("game", PAPER_GAMES, ids=lambda g: g.name)
def test_registry_matches_ale_py(game):
    assert game.rom in ale_py.roms.get_all_rom_ids()
    assert game.n_actions == ale_minimal_actions(game.rom)
    assert game.gym_id == f"ALE/{ale_py.registration.rom_id_to_name(game.rom)}-v5"
    for score in (game.random_score, game.human_score, game.ppo_score):
        assert isinstance(score, float)
    assert game.ppo_score > game.random_score
    assert game.human_score > game.random_score


def test_game_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        GAMES["boxing"].n_actions = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "alias",
    ["kungfu", "KungFu", "KUNGFU", " kungfu ", "Kung Fu Master", "kung_fu_master", "KungFuMaster",
     "ALE/KungFuMaster-v5", "KungFuMasterNoFrameskip-v4"],
)
def test_get_game_aliases(alias):
    assert get_game(alias) is GAMES["kungfu"]


def test_get_game_aliases_of_every_registry_game():
    for game in PAPER_GAMES:
        for alias in (game.name, game.name.upper(), game.title, game.rom, game.gym_id, game.gym_id.lower()):
            assert get_game(alias) is game, alias


def test_game_outside_registry_is_built_from_ale_py():
    pong = get_game("pong")
    assert pong.rom == "pong"
    assert pong.n_actions == 6
    assert pong.gym_id == "ALE/Pong-v5"
    assert (pong.random_score, pong.human_score, pong.ppo_score) == (-20.7, 14.6, 20.7)  # an Atari-57 game
    tetris = get_game("tetris")  # not one of Atari-57: no reference scores
    assert (tetris.random_score, tetris.human_score, tetris.ppo_score) == (None, None, None)
    assert normalize_score(tetris, 21.0) is None
    assert get_game("ALE/Pong-v5") == pong
    assert get_game("Pong") == pong
    assert get_game("PongNoFrameskip-v4") == pong
    assert get_game("ms_pacman") == get_game("MsPacman")
    assert get_game("MsPacman").n_actions == 9


def test_unknown_game_error_lists_names_and_how_to_list_all():
    with pytest.raises(ValueError) as err:
        get_game("tetris3000")
    message = str(err.value)
    assert "tetris3000" in message
    for name in PAPER_ORDER:
        assert name in message
    assert "blip-rl games" in message


@pytest.mark.parametrize("bad", ["", "   ", "combat"])
def test_get_game_rejects_empty_and_multiplayer_only(bad):
    with pytest.raises(ValueError):
        get_game(bad)


def test_parse_games():
    assert parse_games("kungfu,boxing") == [GAMES["kungfu"], GAMES["boxing"]]
    assert parse_games(" riverraid , KungFuMaster,") == [GAMES["riverraid"], GAMES["kungfu"]]
    assert parse_games(["boxing", "pong"]) == [GAMES["boxing"], get_game("pong")]
    assert parse_games(["boxing,krull"]) == [GAMES["boxing"], GAMES["krull"]]
    assert parse_games(",".join(PAPER_ORDER)) == list(PAPER_GAMES)


@pytest.mark.parametrize("empty", ["", " , ", [], [""]])
def test_parse_games_empty(empty):
    with pytest.raises(ValueError, match="at least one game"):
        parse_games(empty)


def test_parse_games_duplicate_names_the_game():
    with pytest.raises(ValueError, match="boxing"):
        parse_games("boxing,krull,boxing")
    with pytest.raises(ValueError, match="kungfu"):
        parse_games("kungfu,ALE/KungFuMaster-v5")


def test_parse_games_unknown():
    with pytest.raises(ValueError, match="blip-rl games"):
        parse_games("boxing,nope")


def test_normalize_score_uses_ppo_and_clips():
    g = GAMES["krull"]
    assert normalize_score(g, g.random_score) == 0.0
    assert normalize_score(g, g.ppo_score) == 1.0
    middle = (g.random_score + g.ppo_score) / 2
    assert normalize_score(g, middle) == pytest.approx(0.5)
    assert normalize_score(g, 10 * g.ppo_score) == 1.0
    assert normalize_score(g, -1000.0) == 0.0
    assert normalize_score("krull", middle) == pytest.approx(0.5)


def test_normalize_score_fallbacks():
    human_only = Game("x", "X", "x", "ALE/X-v5", 4, random_score=10.0, human_score=20.0, ppo_score=None)
    assert normalize_score(human_only, 15.0) == pytest.approx(0.5)
    assert normalize_score(human_only, 30.0) == 1.0
    none = Game("y", "Y", "y", "ALE/Y-v5", 4)
    assert normalize_score(none, 15.0) is None
    no_random = Game("z", "Z", "z", "ALE/Z-v5", 4, ppo_score=5.0)
    assert normalize_score(no_random, 1.0) is None


@given(game=st.sampled_from(PAPER_GAMES), score=st.floats(-1e7, 1e7, allow_nan=False))
def test_normalize_score_stays_in_unit_interval(game, score):
    value = normalize_score(game, score)
    assert 0.0 <= value <= 1.0


def test_list_games_registry_first_then_every_ale_game():
    games = list_games()
    assert games[:6] == list(PAPER_GAMES)
    names = [g.name for g in games]
    assert len(names) == len(set(names))
    roms = {g.rom for g in games}
    assert "pong" in roms and "ms_pacman" in roms and "combat" not in roms
    assert len(games) == len(set(ale_py.roms.get_all_rom_ids()) - games_mod._MULTIPLAYER_ONLY)
    for g in games:
        assert get_game(g.name) == g


snapshot_in_use = pytest.mark.skipif(
    ale_py.__version__ != games_mod._SNAPSHOT_ALE_VERSION,
    reason="the action-count snapshot is only used with the ale-py version it was taken from",
)


@snapshot_in_use
@pytest.mark.parametrize("rom", ["pong", "breakout", "ms_pacman", "seaquest", "asterix", "freeway"])
def test_action_count_snapshot_matches_ale_py(rom):
    assert games_mod._MINIMAL_ACTIONS_SNAPSHOT[rom] == ale_minimal_actions(rom)


@snapshot_in_use
@pytest.mark.slow
def test_whole_action_count_snapshot_matches_ale_py():  # ~10 s: loads every ROM
    assert set(games_mod._MINIMAL_ACTIONS_SNAPSHOT) == set(games_mod._all_roms())
    for rom, count in games_mod._MINIMAL_ACTIONS_SNAPSHOT.items():
        assert count == ale_minimal_actions(rom), rom


# --------------------------------------------------------------------------- Atari-57 references
from blip_rl.envs.games import ATARI57, NORMALIZATIONS, atari57_games, missing_reference  # noqa: E402
from blip_rl.errors import UserError  # noqa: E402

# Games of Schulman et al. 2017's Table 6 is missing (49 of the 57 are there).
NO_PPO_SCORE = {"berzerk", "defender", "hero", "phoenix", "skiing", "solaris", "surround", "yars_revenge"}


def test_atari57_has_random_and_human_scores_for_57_ale_games():
    games = atari57_games()
    assert len(games) == len(ATARI57) == 57
    roms = set(ale_py.roms.get_all_rom_ids())
    for g in games:
        assert g.rom in roms and g.rom not in games_mod._MULTIPLAYER_ONLY, g.rom
        assert isinstance(g.random_score, float) and isinstance(g.human_score, float), g.rom
        assert g.human_score > g.random_score, g.rom  # every human-normalized score is defined
        assert get_game(g.name) == g and get_game(g.rom) == g
    for rom in ("surround", "defender", "phoenix", "pitfall", "skiing", "solaris", "yars_revenge"):
        assert rom in ATARI57
    assert {g.rom for g in games if g.ppo_score is None} == NO_PPO_SCORE
    assert sum(g.ppo_score is not None for g in games) == 49


@pytest.mark.parametrize(
    ("name", "random", "human"),
    # google-deepmind/dqn_zoo, dqn_zoo/atari_data.py, _ATARI_DATA (Mnih et al. 2015's table)
    [("pong", -20.7, 14.6), ("breakout", 1.7, 30.5), ("mspacman", 307.3, 6951.6),
     ("montezumarevenge", 0.0, 4753.3), ("skiing", -17098.1, -4336.9), ("videopinball", 16256.9, 17667.9)],
)
def test_known_random_and_human_scores(name, random, human):
    g = get_game(name)
    assert (g.random_score, g.human_score) == (random, human)


@pytest.mark.parametrize(
    ("name", "ppo"),
    # Schulman et al. 2017, Table 6, PPO column (via the endtoend.ai pages named in games.py)
    [("alien", 1850.3), ("atlantis", 2311815.0), ("beamrider", 1590.0), ("stargunner", 32689.0),
     ("mspacman", 2096.5), ("doubledunk", -14.9), ("kungfu", 23310.3)],
)
def test_known_ppo_scores(name, ppo):
    assert get_game(name).ppo_score == ppo


def test_paper_games_keep_their_names_and_values():
    expected = {
        "kungfu": (258.5, 22736.3, 23310.3), "boxing": (0.1, 12.1, 94.6), "jamesbond": (29.0, 302.8, 560.7),
        "krull": (1598.0, 2665.5, 7942.3), "riverraid": (1338.5, 17118.0, 8393.6),
        "spaceinvaders": (148.0, 1668.7, 942.5),
    }
    for name, scores in expected.items():
        g = GAMES[name]
        assert (g.random_score, g.human_score, g.ppo_score) == scores
        assert (g.mode, g.difficulty) == (None, None)
        # the tables the other games use agree with the paper games' values
        assert games_mod._RANDOM_HUMAN[g.rom] == scores[:2] and games_mod._PPO[g.rom] == scores[2]
    assert [g for g in atari57_games() if g.rom in {p.rom for p in PAPER_GAMES}] == sorted(PAPER_GAMES, key=lambda g: g.rom)


def test_short_names_follow_the_rom_rule():
    for rom, name in [("ms_pacman", "mspacman"), ("beam_rider", "beamrider"), ("star_gunner", "stargunner"),
                      ("hero", "hero"), ("up_n_down", "upndown")]:
        assert get_game(rom).name == name


def test_list_games_lists_every_atari57_game_with_scores():
    listed = {g.rom: g for g in list_games()}
    assert len(listed) >= 57
    for g in atari57_games():
        assert listed[g.rom] == g


# --------------------------------------------------------------------------- normalizations
def test_ppo_normalization_is_the_default_and_unchanged_for_the_paper_games():
    assert NORMALIZATIONS == ("ppo", "human", "none")
    for g in PAPER_GAMES:
        for score in (g.random_score, (g.random_score + g.ppo_score) / 2, g.ppo_score, 2 * g.ppo_score, -1e6):
            expected = min(1.0, max(0.0, (score - g.random_score) / (g.ppo_score - g.random_score)))
            assert normalize_score(g, score) == pytest.approx(expected)
            assert normalize_score(g, score, "ppo") == normalize_score(g, score)
    assert normalize_score("hero", 15926.7) == pytest.approx(0.5)  # no PPO score: human reference


def test_human_normalization():
    pong = get_game("pong")  # random -20.7, human 14.6
    assert normalize_score(pong, -3.05, "human") == pytest.approx(0.5)
    assert normalize_score(pong, 21.0, "human") == 1.0
    assert normalize_score(pong, -21.0, "human") == 0.0
    boxing = GAMES["boxing"]  # random 0.1, human 12.1 (PPO 94.6)
    assert normalize_score(boxing, 6.1, "human") == pytest.approx(0.5)
    assert normalize_score(boxing, 6.1, "ppo") == pytest.approx(6.0 / 94.5)
    assert normalize_score(get_game("tetris"), 5.0, "human") is None


def test_none_normalization_gives_none():
    for g in (GAMES["kungfu"], get_game("pong"), get_game("tetris")):
        assert normalize_score(g, 123.0, "none") is None
    assert missing_reference(list(PAPER_GAMES) + [get_game("tetris")], "none") == []


def test_unknown_normalization_names_the_valid_ones():
    with pytest.raises(UserError) as err:
        normalize_score("kungfu", 1.0, "max")
    for name in NORMALIZATIONS:
        assert repr(name) in str(err.value)
    with pytest.raises(UserError, match="'human'"):
        missing_reference(["kungfu"], "Human")


def test_missing_reference():
    games = parse_games("kungfu,hero,tetris,pong")
    assert missing_reference(games, "ppo") == [get_game("tetris")]
    assert missing_reference(games, "human") == [get_game("tetris")]
    assert missing_reference(["kungfu", "tetris"], "ppo") == [get_game("tetris")]
    no_ppo = Game("x", "X", "x", "ALE/X-v5", 4, random_score=1.0, ppo_score=None, human_score=None)
    assert missing_reference([no_ppo], "ppo") == [no_ppo]
    assert missing_reference(list(PAPER_GAMES), "ppo") == []
