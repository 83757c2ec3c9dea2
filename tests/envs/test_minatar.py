"""MinAtar as an environment family: the games, their vector env, and runs of the shipped configs."""
import json
import re

import numpy as np
import pytest

from blip_rl.config import TrainConfig
from blip_rl.envs.family import family_of, get_task, parse_tasks
from blip_rl.envs.minatar import CHANNELS, MINATAR, MINATAR_GAMES, make_minatar_vec_env, MinAtarSettings
from tests._cli import PINNED, blip_rl

pytest.importorskip("minatar")


def test_five_games_with_their_minimal_action_sets_and_names():
    assert [g.name for g in MINATAR_GAMES] == ["minatar-asterix", "minatar-breakout", "minatar-freeway",
                                               "minatar-seaquest", "minatar-spaceinvaders"]
    import importlib

    for g in MINATAR_GAMES:
        env = importlib.import_module(f"minatar.environments.{g.module}").Env(ramping=True)
        assert tuple(env.minimal_action_set()) == g.actions and env.state_shape()[2] == g.channels
        assert family_of(g.name) is MINATAR and get_task(g.gym_id) == g  # MinAtar's own ids too
    assert get_task("minatar-space_invaders").name == "minatar-spaceinvaders"


def test_observations_are_padded_channel_first_and_reproducible_from_the_seed():
    game = get_task("minatar-breakout")
    runs = []
    for _ in range(2):
        env = make_minatar_vec_env(game, n_envs=3, seed=5, settings=MinAtarSettings())
        assert env.observation_space.shape == (CHANNELS, 10, 10) and env.action_space.n == 3
        obs = [env.reset()]
        rng = np.random.default_rng(0)
        ends = []
        for _ in range(300):
            o, r, d, infos = env.step(rng.integers(0, 3, 3))
            obs.append(o)
            ends += [(i, info["episode"]["r"], info["episode"]["l"]) for i, info in enumerate(infos) if d[i]]
        runs.append((np.stack(obs), ends))
        env.close()
    assert np.array_equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1] and runs[0][1]
    assert runs[0][0].dtype == np.uint8 and runs[0][0][:, :, 4:].max() == 0  # breakout has 4 channels
    assert not np.array_equal(runs[0][0][:, 0], runs[0][0][:, 1])  # each env its own seed


def test_the_step_limit_cuts_a_game_and_says_so():
    env = make_minatar_vec_env(get_task("minatar-freeway"), n_envs=1, seed=0, settings=MinAtarSettings(),
                               max_episode_steps=7)
    env.reset()
    for t in range(7):
        obs, _, done, infos = env.step(np.array([0]))
    assert done[0] and infos[0]["TimeLimit.truncated"] and infos[0]["episode"]["l"] == 7
    assert infos[0]["terminal_observation"].shape == (CHANNELS, 10, 10)


def test_one_observation_shape_serves_every_game_of_a_sequence():
    tasks = parse_tasks([g.name for g in MINATAR_GAMES], env_cfg=TrainConfig().env)
    assert len(tasks) == 5


@pytest.mark.parametrize("game", MINATAR_GAMES, ids=lambda g: g.name)
def test_the_card_code_plays_the_same_games_as_blip_rl(game):
    """MinAtar's own Gymnasium env with the card's wrapper, seeded as the card seeds it, gives
    the observations, rewards and game ends of blip-rl's vector env step for step, across games."""
    ev = {**MINATAR.card_settings(game, TrainConfig().env), "n_envs": 3, "seed": 11, "max_episode_steps": 50,
          "episodes": 3, "deterministic": True}
    ns = {}
    exec(compile(MINATAR.model_card(game, ev)["code"], "card", "exec"), ns)  # noqa: S102
    theirs = ns["env"]
    ours = MINATAR.make_vec_env(game, n_envs=3, seed=11, training=False, env_cfg=TrainConfig().env,
                                max_episode_steps=50)
    a, b = theirs.reset(), ours.reset()
    rng = np.random.default_rng(1)
    ends = 0
    for _ in range(300):
        assert np.array_equal(a, b)
        act = rng.integers(0, game.n_actions, 3)
        a, ra, da, _ = theirs.step(act)
        b, rb, db, _ = ours.step(act)
        assert np.array_equal(ra, rb) and np.array_equal(da, db)
        ends += int(db.sum())
    assert ends >= 3


TINY = ["--steps-per-game", "256", "--n-envs", "2", "--set", "ppo.n_steps=64", "--set", "ppo.n_minibatches=2",
        "--eval-episodes", "2", "--set", "eval.max_episode_steps=50", "--set", "fisher_samples=64",
        "--set", "eval.every=0", "--threads", "1", "--no-progress", *PINNED]


@pytest.mark.parametrize("method", ["blip", "ft"])
def test_minatar3_runs_end_to_end(tmp_path, method):
    run_dir = tmp_path / method
    blip_rl("train", "--config", "minatar3", "--method", method, *TINY, "--run-dir", run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["tasks"] == ["minatar-spaceinvaders", "minatar-asterix", "minatar-seaquest"]
    assert all(v is not None for v in results["raw"][2])
    assert results["normalized"][0][0] is not None  # MinAtar ships reference scores
    out = json.loads(blip_rl("eval", run_dir / "checkpoints" / "2_minatar-seaquest.pt", "--game",
                             "minatar-spaceinvaders", "--json", "--threads", "1").stdout)
    assert out["mean"] == results["raw"][2][0]


@pytest.mark.slow  # ten trainings (~1 min); `make test-all`. The default suite runs blip and ft above.
def test_every_method_runs_on_minatar(tmp_path):
    from blip_rl.core import METHODS

    for method in METHODS:
        run_dir = tmp_path / method
        blip_rl("train", "--games", "minatar-breakout,minatar-asterix", "--method", method, *TINY,
                "--run-dir", run_dir)
        assert len(json.loads((run_dir / "results.json").read_text())["raw"]) == 2, method


def test_record_and_export_a_minatar_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    blip_rl("train", "--games", "minatar-breakout,minatar-freeway", "--method", "blip", *TINY, "--run-dir", run_dir)
    ckpt = run_dir / "checkpoints" / "latest.pt"
    blip_rl("record", ckpt, "--game", "minatar-breakout", "--out", tmp_path / "b.gif", "--max-steps", "40",
            "--threads", "1")
    from PIL import Image

    with Image.open(tmp_path / "b.gif") as im:
        assert im.size == (240, 240)  # 10x10 cells of 24 pixels

    blip_rl("export", ckpt, "--game", "minatar-freeway", "--out", tmp_path / "f.zip")
    from stable_baselines3 import PPO

    model = PPO.load(tmp_path / "f.zip", device="cpu")
    assert model.observation_space.shape == (CHANNELS, 10, 10) and model.action_space.n == 3
    card = (tmp_path / "f.md").read_text()
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    ns = {}
    exec(compile(code, "model-card", "exec"), ns)  # noqa: S102  (the card's code, verbatim)
    ours = json.loads(blip_rl("eval", ckpt, "--game", "minatar-freeway", "--json", "--threads", "1").stdout)
    assert ns["scores"] == ours["scores"]
