"""Game modes and difficulties as tasks: parsing, names, checks against ALE, envs that play them."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from blip_rl.config import load_config
from blip_rl.envs import (
    BackendFallbackWarning,
    GAMES,
    game_modes,
    get_game,
    make_vec_env,
    missing_reference,
    needs_mode_backend,
    normalize_score,
    parse_games,
)
from blip_rl.envs.atari import AtariVecEnv
from blip_rl.errors import UserError

SI_MODE_RAM = 0x5C  # Space Invaders keeps its game number here (ALE's SpaceInvadersSettings::setMode reads it)


def test_parse_modes_gives_distinct_games_with_safe_names():
    games = parse_games("spaceinvaders:mode=0,spaceinvaders:mode=4,freeway:mode=1:difficulty=1")
    # the default mode is the game itself: same name, same task
    assert [g.name for g in games] == ["spaceinvaders", "spaceinvaders-mode4", "freeway-mode1-difficulty1"]
    assert [(g.mode, g.difficulty) for g in games] == [(None, None), (4, None), (1, 1)]
    assert games[0] is GAMES["spaceinvaders"]
    assert [g.title for g in games] == ["Space Invaders", "Space Invaders (mode 4)", "Freeway (mode 1, difficulty 1)"]
    assert len(set(games)) == 3
    base = GAMES["spaceinvaders"]
    assert games[1] == dataclasses.replace(base, name="spaceinvaders-mode4", title="Space Invaders (mode 4)",
                                           mode=4, random_score=None, human_score=None, ppo_score=None)
    for g in games:
        assert all(c.isalnum() or c == "-" for c in g.name)


@pytest.mark.parametrize("spec", ["spaceinvaders:mode=4", "spaceinvaders-mode4", "SpaceInvaders:mode=4",
                                  "ALE/SpaceInvaders-v5:mode=4", " space_invaders : mode = 4 ",
                                  "spaceinvaders-MODE4"])
def test_colon_spec_and_name_form_find_the_same_game(spec):
    assert get_game(spec) == get_game("spaceinvaders:mode=4")


def test_names_round_trip():
    for spec in ("freeway:mode=1:difficulty=1", "freeway:difficulty=1", "freeway:difficulty=1:mode=1",
                 "spaceinvaders:mode=15", "pong:difficulty=3", "breakout:mode=4"):
        g = get_game(spec)
        assert get_game(g.name) == g
        assert parse_games(g.name) == [g]
    assert get_game("freeway:difficulty=1").name == "freeway-difficulty1"
    assert get_game("spaceinvaders-mode4:difficulty=1").name == "spaceinvaders-mode4-difficulty1"
    assert get_game("spaceinvaders") is GAMES["spaceinvaders"]  # no settings: the base game itself


def test_invalid_mode_or_difficulty_lists_the_valid_ones():
    modes, difficulties = game_modes("spaceinvaders")
    assert modes == tuple(range(16)) and difficulties == (0, 1)
    with pytest.raises(UserError) as err:
        get_game("spaceinvaders:mode=16")
    assert "mode 16" in str(err.value) and ", ".join(map(str, modes)) in str(err.value)
    with pytest.raises(UserError, match=r"difficulties 0, 1"):
        get_game("freeway-difficulty7")
    with pytest.raises(UserError, match=r"no mode 1; ALE offers modes 0 "):
        get_game("kungfu:mode=1")


@pytest.mark.parametrize(
    ("spec", "match"),
    [("spaceinvaders:level=3", "unknown setting 'level'.*mode and difficulty"),
     ("spaceinvaders:mode=4:mode=5", "mode is given twice"),
     ("spaceinvaders-mode4:mode=5", "mode is given twice"),
     ("spaceinvaders:mode=four", "cannot read"),
     ("spaceinvaders:mode", "cannot read"),
     ("spaceinvaders:mode=-1", "0 or more"),
     (":mode=1", "give the game"),
     ("nope:mode=1", "unknown game"),
     ("nope-mode1", "unknown game")],
)
def test_bad_specs_are_user_errors(spec, match):
    with pytest.raises(UserError, match=match):
        get_game(spec)


def test_same_game_and_mode_twice_is_an_error_two_modes_are_fine():
    with pytest.raises(UserError, match="named twice"):
        parse_games("spaceinvaders:mode=4,spaceinvaders-mode4")
    with pytest.raises(UserError, match="named twice"):
        parse_games("spaceinvaders,spaceinvaders:mode=0")  # mode 0 is Space Invaders' default
    assert len(parse_games("spaceinvaders,spaceinvaders:mode=1,spaceinvaders:mode=1:difficulty=1")) == 3


def test_reference_scores_only_in_the_default_mode_and_difficulty():
    base = GAMES["spaceinvaders"]
    default = get_game("spaceinvaders:mode=0:difficulty=0")
    assert (default.random_score, default.human_score, default.ppo_score) == (
        base.random_score, base.human_score, base.ppo_score)
    assert normalize_score(default, 500.0) == normalize_score(base, 500.0)
    for spec in ("spaceinvaders:mode=4", "spaceinvaders:difficulty=1"):
        g = get_game(spec)
        assert (g.random_score, g.human_score, g.ppo_score) == (None, None, None)
        assert normalize_score(g, 500.0) is None and normalize_score(g, 500.0, "human") is None
    assert missing_reference(parse_games("spaceinvaders-mode0,spaceinvaders-mode4"), "ppo") == [
        get_game("spaceinvaders-mode4")]


def test_which_games_need_the_sb3_backend():
    assert not needs_mode_backend(GAMES["spaceinvaders"])
    assert not needs_mode_backend(get_game("spaceinvaders:mode=0:difficulty=0"))
    assert needs_mode_backend(get_game("spaceinvaders:mode=4"))
    assert needs_mode_backend(get_game("freeway:difficulty=1"))


def _si_ram_modes(env) -> list[int]:
    return [int(e.unwrapped.ale.getRAM()[SI_MODE_RAM]) for e in env.unwrapped.envs]


def _roll(env, steps: int = 30) -> np.ndarray:
    obs = env.reset()
    rng = np.random.default_rng(0)
    for _ in range(steps):
        obs, rewards, dones, infos = env.step(rng.integers(0, env.action_space.n, env.num_envs))
    return obs


def test_sb3_backend_plays_the_chosen_mode():
    for mode in (0, 4, 9):
        env = make_vec_env(f"spaceinvaders:mode={mode}", n_envs=2, seed=3, backend="sb3", max_episode_steps=200)
        try:
            obs = _roll(env)
            assert obs.shape == (2, 4, 84, 84)
            assert _si_ram_modes(env) == [mode, mode]
        finally:
            env.close()
    env = make_vec_env("spaceinvaders", n_envs=1, seed=3, backend="sb3")
    try:
        _roll(env, 5)
        assert _si_ram_modes(env) == [0]  # the default mode
    finally:
        env.close()


def test_sb3_backend_takes_a_difficulty():
    env = make_vec_env("freeway:mode=1:difficulty=1", n_envs=1, seed=0, backend="sb3", max_episode_steps=100)
    try:
        _roll(env, 10)
        ale_env = env.unwrapped.envs[0].unwrapped
        assert (ale_env._game_mode, ale_env._game_difficulty) == (1, 1)  # what ale_py's AtariEnv set
    finally:
        env.close()


def test_ale_backend_falls_back_to_sb3_for_a_mode_with_a_warning():
    with pytest.warns(BackendFallbackWarning, match=r"Space Invaders \(mode 4\).*'sb3'"):
        env = make_vec_env("spaceinvaders-mode4", n_envs=2, seed=1, backend="ale", max_episode_steps=200)
    try:
        assert not isinstance(env, AtariVecEnv)
        _roll(env)
        assert _si_ram_modes(env) == [4, 4]
    finally:
        env.close()
    env = make_vec_env("spaceinvaders:mode=0", n_envs=1, seed=1, backend="ale")  # the default: native env
    try:
        assert isinstance(env, AtariVecEnv)
    finally:
        env.close()
    with pytest.raises(UserError, match="sb3"):
        AtariVecEnv(get_game("spaceinvaders:mode=4"), n_envs=1, seed=0)


def test_mode_changes_what_the_agent_sees():
    def frames(spec: str) -> np.ndarray:
        env = make_vec_env(spec, n_envs=1, seed=5, backend="sb3", noop_max=0, max_episode_steps=500)
        try:
            return np.stack([_roll(env, n) for n in (60, 120)])
        finally:
            env.close()

    assert np.array_equal(frames("spaceinvaders:mode=0"), frames("spaceinvaders"))
    assert not np.array_equal(frames("spaceinvaders:mode=0"), frames("spaceinvaders:mode=9"))


@pytest.mark.parametrize("name", ["cora6", "spaceinvaders_modes"])
def test_shipped_configs_load_and_their_games_parse(name):
    cfg = load_config(name)
    games = parse_games(cfg.games)
    if name == "cora6":
        assert [g.rom for g in games] == ["space_invaders", "krull", "beam_rider", "hero", "star_gunner", "ms_pacman"]
        assert missing_reference(games, "ppo") == []  # hero falls back to its human score
        assert missing_reference(games, "human") == []
    else:
        assert [g.mode for g in games] == [None, *range(1, 10)]  # mode 0 is the default: the game itself
        assert [g.name for g in games] == ["spaceinvaders", *(f"spaceinvaders-mode{m}" for m in range(1, 10))]
        assert cfg.env.backend == "sb3"
        assert game_modes(games[0])[0][:10] == tuple(range(10))
