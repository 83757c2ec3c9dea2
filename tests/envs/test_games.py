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
    assert (pong.random_score, pong.human_score, pong.ppo_score) == (None, None, None)
    assert get_game("ALE/Pong-v5") == pong
    assert get_game("Pong") == pong
    assert get_game("PongNoFrameskip-v4") == pong
    assert get_game("ms_pacman") == get_game("MsPacman")
    assert get_game("MsPacman").n_actions == 9
    assert normalize_score(pong, 21.0) is None


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
