"""Tests of the vectorised Atari envs (blip_rl.envs.atari). Small envs, a few hundred steps."""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecEnv

from blip_rl.envs import GAMES, evaluate_episodes, evaluate_policy, make_vec_env
from blip_rl.envs.atari import AtariVecEnv

needs_cv2 = pytest.mark.skipif(
    importlib.util.find_spec("cv2") is None, reason="backend 'sb3' needs opencv-python(-headless)"
)
BACKENDS = ["ale", pytest.param("sb3", marks=needs_cv2)]


def random_actions(rng: np.random.Generator, env: VecEnv) -> np.ndarray:
    return rng.integers(0, env.action_space.n, size=env.num_envs)


def run_random(env: VecEnv, steps: int, seed: int = 0):
    """Play random actions; return (obs, rewards, dones, infos) of each step."""
    rng = np.random.default_rng(seed)
    return [env.step(random_actions(rng, env)) for _ in range(steps)]


def run_kicks(env: VecEnv, steps: int):
    """Kung Fu Master: alternate LEFTFIRE and LEFT, which scores (100s of points) within ~170
    steps and loses lives within ~450, for any seed tried."""
    return [env.step(np.full(env.num_envs, 8 if t % 2 == 0 else 3)) for t in range(steps)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("training", [True, False])
def test_spaces_and_dtypes(backend, training):
    env = make_vec_env("spaceinvaders", n_envs=2, seed=0, training=training, backend=backend)
    try:
        assert isinstance(env, VecEnv)
        assert env.num_envs == 2
        assert env.observation_space == spaces.Box(0, 255, (4, 84, 84), np.uint8)
        assert env.action_space == spaces.Discrete(GAMES["spaceinvaders"].n_actions)
        obs = env.reset()
        assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
        obs, rewards, dones, infos = env.step(np.array([0, 1]))
        assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
        assert rewards.shape == (2,) and rewards.dtype == np.float32
        assert dones.shape == (2,) and dones.dtype == np.bool_
        assert isinstance(infos, list) and len(infos) == 2 and all(isinstance(i, dict) for i in infos)
        assert obs.max() > 0  # the screen is drawn, not blank
    finally:
        env.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_clips_rewards_but_episode_reports_raw_score(backend):
    # Kung Fu Master scores 100s of points per enemy.
    env = make_vec_env("kungfu", n_envs=2, seed=0, training=True, backend=backend, max_episode_steps=200)
    try:
        env.reset()
        episodes, n_dones = [], 0
        for obs, rewards, dones, infos in run_kicks(env, 450):
            assert set(np.unique(rewards)) <= {-1.0, 0.0, 1.0}
            for i in np.flatnonzero(dones):
                n_dones += 1
                term = infos[i]["terminal_observation"]
                assert term.shape == (4, 84, 84) and term.dtype == np.uint8
                assert isinstance(infos[i]["TimeLimit.truncated"], bool)
                if "episode" in infos[i]:
                    episodes.append(infos[i])
            for i in np.flatnonzero(~dones):
                assert "episode" not in infos[i] and "terminal_observation" not in infos[i]
        assert len(episodes) >= 2
        scores = [info["episode"]["r"] for info in episodes]
        assert all(s % 100 == 0 for s in scores), scores
        assert max(scores) > 1, scores  # raw points, not clipped rewards
        for info in episodes:
            assert set(info["episode"]) == {"r", "l", "t"}
            assert 1 <= info["episode"]["l"] <= 200
            if info["TimeLimit.truncated"]:
                assert info["episode"]["l"] == 200 or backend == "sb3"  # sb3 counts reset frames too
        assert n_dones >= len(episodes)
    finally:
        env.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_life_loss_ends_training_episode_but_not_the_game(backend):
    # Random play loses Kung Fu Master's first life after ~220 steps (4 lives in all).
    env = make_vec_env("kungfu", n_envs=2, seed=3, training=True, backend=backend)
    try:
        env.reset()
        life_losses = 0
        for obs, rewards, dones, infos in run_random(env, 300):
            for i in np.flatnonzero(dones):
                assert "episode" not in infos[i]  # the game goes on
                assert not infos[i]["TimeLimit.truncated"]
                assert "terminal_observation" in infos[i]
                if backend == "ale":  # no reset: the game continues from the terminal frame
                    np.testing.assert_array_equal(infos[i]["terminal_observation"], obs[i])
                life_losses += 1
        assert life_losses >= 1
    finally:
        env.close()


def test_eval_env_plays_full_games_with_raw_rewards():
    env = make_vec_env("kungfu", n_envs=2, seed=0, training=False)
    try:
        env.reset()
        rewards_seen, lives_seen = set(), set()
        for obs, rewards, dones, infos in run_kicks(env, 450):
            rewards_seen |= set(rewards.tolist())
            lives_seen |= {info["lives"] for info in infos}
            assert not dones.any()  # lives are lost in these steps, but the game goes on
        assert min(lives_seen) < max(lives_seen)
        assert max(rewards_seen) >= 100 and all(r % 100 == 0 for r in rewards_seen)
    finally:
        env.close()


def test_training_and_evaluation_envs_agree_on_game_scores():
    """With the same seed and actions the game is the same: the training env's clipped rewards
    are the sign of the evaluation env's raw ones, it has extra dones at life losses, and both
    report the same raw game scores, the sums of the raw rewards."""
    kwargs = dict(n_envs=2, seed=11, max_episode_steps=300)
    train = make_vec_env("kungfu", training=True, **kwargs)
    evaluate = make_vec_env("kungfu", training=False, **kwargs)
    try:
        np.testing.assert_array_equal(train.reset(), evaluate.reset())
        returns = np.zeros(2)
        train_scores, eval_scores, summed = [], [], []
        train_dones = eval_dones = 0
        for (obs_t, rew_t, done_t, info_t), (obs_e, rew_e, done_e, info_e) in zip(
            run_kicks(train, 600), run_kicks(evaluate, 600)
        ):
            np.testing.assert_array_equal(obs_t, obs_e)
            np.testing.assert_array_equal(rew_t, np.sign(rew_e))
            train_dones += done_t.sum()
            eval_dones += done_e.sum()
            returns += rew_e
            train_scores += [i["episode"]["r"] for i in info_t if "episode" in i]
            eval_scores += [i["episode"]["r"] for i in info_e if "episode" in i]
            for i in np.flatnonzero(done_e):
                summed.append(returns[i])
                returns[i] = 0.0
        assert eval_dones == len(eval_scores) == 4  # 2 envs x 2 games cut at 300 steps
        assert train_dones > eval_dones  # + life losses
        assert train_scores == eval_scores == summed
        assert max(eval_scores) >= 100
    finally:
        train.close()
        evaluate.close()


def test_ale_backend_is_deterministic_for_a_seed():
    def trajectory(seed: int) -> list[np.ndarray]:
        env = make_vec_env("boxing", n_envs=2, seed=seed, training=True, noop_max=30, max_episode_steps=60)
        try:
            frames = [env.reset()]
            frames += [obs for obs, *_ in run_random(env, 150, seed=1)]
            return frames
        finally:
            env.close()

    a, b, c = trajectory(7), trajectory(7), trajectory(8)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, z) for x, z in zip(a, c))


def test_reseeding_restarts_the_same_games():
    env = make_vec_env("boxing", n_envs=2, seed=4)
    try:
        first = env.reset()
        run_random(env, 20)
        env.seed(4)
        np.testing.assert_array_equal(env.reset(), first)
    finally:
        env.close()


def test_evaluate_policy_plays_exactly_the_episodes_asked_and_is_reproducible():
    seen = []

    def act(obs: np.ndarray) -> np.ndarray:
        assert obs.dtype == np.uint8 and obs.shape[1:] == (4, 84, 84)
        seen.append(obs.shape[0])
        # A deterministic function of the screen, so different seeds give different games.
        return (obs[:, -1].reshape(len(obs), -1).sum(axis=1) % 18).astype(np.int64)

    scores = evaluate_policy(act, "boxing", episodes=3, seed=21, n_envs=2, max_episode_steps=80)
    assert len(scores) == 3 and all(isinstance(s, float) for s in scores)
    assert set(seen) == {2}
    assert evaluate_policy(act, "boxing", episodes=3, seed=21, n_envs=2, max_episode_steps=80) == scores
    one = evaluate_policy(act, GAMES["boxing"], episodes=1, seed=21, max_episode_steps=80)
    assert len(one) == 1


@needs_cv2
def test_evaluate_policy_sb3_backend():
    scores = evaluate_policy(lambda o: np.zeros(len(o), int), "boxing", episodes=2, seed=0, max_episode_steps=50,
                             backend="sb3")
    assert len(scores) == 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_envs=0), "n_envs"),
        (dict(n_envs=2.5), "n_envs"),
        (dict(backend="envpool"), "backend"),
        (dict(seed=-1), "seed"),
        (dict(seed=2**31), "seed"),
        (dict(frame_stack=0), "frame_stack"),
        (dict(max_episode_steps=0), "max_episode_steps"),
        (dict(repeat_action_probability=1.5), "repeat_action_probability"),
        (dict(game="nope"), "blip-rl games"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = dict(game="boxing", n_envs=2, seed=0) | kwargs
    with pytest.raises(ValueError, match=match):
        make_vec_env(args.pop("game"), **args)


def test_bad_evaluate_arguments():
    with pytest.raises(ValueError, match="episodes"):
        evaluate_policy(lambda o: np.zeros(len(o), int), "boxing", episodes=0, seed=0)
    with pytest.raises(ValueError, match="act_fn"):
        evaluate_policy(lambda o: np.zeros(5, int), "boxing", episodes=2, seed=0)


def test_bad_actions_and_stepping_a_closed_env():
    env = make_vec_env("boxing", n_envs=2, seed=0)
    env.reset()
    with pytest.raises(ValueError, match="one integer action per env"):
        env.step(np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"\[0, 18\)"):
        env.step(np.array([0, 18]))
    env.close()
    env.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        env.reset()


def _thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def test_close_joins_the_worker_threads():
    before = _thread_count()
    env = make_vec_env("boxing", n_envs=2, seed=0, num_threads=2)
    env.reset()
    env.step(np.array([0, 0]))
    assert _thread_count() > before  # min(num_threads, cores) C++ workers
    env.step_async(np.array([1, 1]))  # a pending step must not block close()
    env.close()
    assert _thread_count() == before


def test_sb3_plumbing_of_the_native_backend():
    env = make_vec_env("boxing", n_envs=2, seed=0)
    try:
        assert isinstance(env, AtariVecEnv)
        assert env.render_mode is None
        assert env.get_attr("render_mode") == [None, None]
        assert env.env_is_wrapped(Monitor) == [True, True]
        assert env.env_method("get_action_meanings", indices=[0])[0][:2] == ["NOOP", "FIRE"]
        assert len(env.get_action_meanings()) == 18
        assert env.seed(5) == [5, 6]
    finally:
        env.close()


def test_ppo_trains_on_the_native_backend_and_logs_raw_scores():
    from stable_baselines3 import PPO

    env = make_vec_env("kungfu", n_envs=2, seed=0, max_episode_steps=24)
    try:
        model = PPO("CnnPolicy", env, n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu")
        model.learn(total_timesteps=64)
        assert len(model.ep_info_buffer) >= 2
        assert all(ep["l"] <= 24 for ep in model.ep_info_buffer)
    finally:
        env.close()


def test_evaluate_episodes_plays_all_games_at_once_and_counts_the_cut_ones():
    rng = np.random.default_rng(0)
    seen, progress = [], []

    def act(obs):
        seen.append(len(obs))
        return rng.integers(0, 18, size=len(obs))

    played = evaluate_episodes(act, "boxing", episodes=3, seed=5, max_episode_steps=50,
                               on_episode=lambda done, total: progress.append((done, total)))
    # One env per game (n_envs=None): every forward sees the 3 games together.
    assert set(seen) == {3} and len(seen) == 50
    # Boxing lasts ~1,800 steps: all 3 games are cut at the 50-step limit.
    assert played.lengths == [50, 50, 50] and played.cut == [True, True, True] and played.n_cut == 3
    assert played.env_steps == 150 and played.seconds > 0
    assert progress == [(1, 3), (2, 3), (3, 3)]
    # A game that ends by itself is not counted as cut.
    pong = evaluate_episodes(lambda obs: np.zeros(len(obs), dtype=np.int64), "pong", episodes=2, seed=1,
                             max_episode_steps=27000)
    assert pong.n_cut == 0 and all(length < 27000 for length in pong.lengths) and pong.scores == [-21.0, -21.0]
