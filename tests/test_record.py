"""`blip-rl record`: a GIF of the screens the agent played, in step with its observations."""
import argparse
import importlib.util
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from blip_rl import record as rec_mod
from blip_rl.agents.checkpoint import load_checkpoint
from blip_rl.agents.evaluation import evaluate_game
from blip_rl.config import EnvConfig, TrainConfig, merge
from blip_rl.envs import get_game
from blip_rl.record import play, record_game

TINY = ["--games", "kungfu,boxing", "--steps-per-game", "128", "--n-envs", "2", "--set", "ppo.n_steps=32",
        "--set", "ppo.n_minibatches=2", "--set", "ppo.n_epochs=1", "--eval-episodes", "1",
        "--set", "eval.max_episode_steps=30", "--set", "eval.n_envs=1", "--set", "fisher_samples=64",
        "--set", "features_dim=32", "--threads", "1", "--device", "cpu", "--precision", "fp32", "--no-progress"]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # Batch-1 convolutions gain nothing from threads, and lose much on a busy 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run") / "blip"
    out = subprocess.run([sys.executable, "-m", "blip_rl.cli", "train", *TINY, "--method", "blip", "--seed", "3",
                          "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return run_dir


def _gif_frames(path):
    """Decoded RGB frames and their durations (ms)."""
    frames, durations = [], []
    with Image.open(path) as im:
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
            durations.append(im.info["duration"])
    return frames, durations


def test_gif_holds_exactly_the_screens_played(run, tmp_path):
    ckpt = run / "checkpoints" / "latest.pt"
    rec = record_game(ckpt, game="boxing", out=tmp_path / "boxing.gif", max_steps=40, fps=10)
    assert (rec.game, rec.head, rec.seed, rec.steps, rec.frames, rec.game_over) == ("boxing", 1, 3, 40, 41, False)
    # The same game again (greedy, same seed), keeping the screens.
    policy, meta = load_checkpoint(ckpt)
    cfg = merge(TrainConfig(), {k: meta["state"]["config"][k] for k in ("env", "eval", "seed")})
    played = []
    again = play(policy, 1, get_game("boxing"), cfg.env, seed=3 + cfg.eval.seed_offset, max_steps=40,
                 on_frame=played.append)
    assert again.score == rec.score and len(played) == 41
    # Pillow merges identical consecutive frames and adds up their delays: at 10 fps each screen is 100 ms.
    frames, durations = _gif_frames(tmp_path / "boxing.gif")
    assert frames[0].shape == (210, 160, 3)
    assert all(d % 100 == 0 for d in durations) and sum(durations) == 41 * 100
    expanded = [f for f, d in zip(frames, durations) for _ in range(d // 100)]
    assert len(expanded) == 41
    for t, (a, b) in enumerate(zip(expanded, played)):
        assert np.array_equal(a, b), t  # exact colours, right order


def test_default_fps_keeps_real_playback_time(run, tmp_path):
    rec = record_game(run / "checkpoints" / "latest.pt", game="kungfu", out=tmp_path / "k.gif", max_steps=20)
    assert rec.frames == 21 and rec.fps == 30
    _, durations = _gif_frames(tmp_path / "k.gif")
    assert sum(durations) == 700  # 21 frames at 30 fps = 700 ms (GIF delays are in 10 ms steps)


@pytest.mark.parametrize("game, head", [("kungfu", 0), ("boxing", 1)])
def test_score_is_the_run_evaluation_score(run, game, head):
    # The run evaluated 1 greedy game of at most 30 steps per game, with the run's seed.
    rec = record_game(run / "checkpoints" / "latest.pt", game=game, out=run.parent / f"{game}.gif", max_steps=30)
    assert rec.score == json.loads((run / "results.json").read_text())["raw"][-1][head]


@pytest.mark.parametrize("sample, seed", [(True, 5), (False, 3)])
def test_record_plays_the_game_blip_rl_eval_plays(run, sample, seed):
    # Boxing scores within 150 steps even for a tiny agent (here -2 and +1 on this machine).
    ckpt = run / "checkpoints" / "latest.pt"
    policy, meta = load_checkpoint(ckpt)
    cfg = merge(TrainConfig(), {**{k: meta["state"]["config"][k] for k in ("env", "eval", "seed")},
                                "eval.max_episode_steps": 150, "eval.deterministic": not sample})
    score = evaluate_game(policy, 1, get_game("boxing"), cfg, seed=seed, episodes=1).scores[0]
    rec = record_game(ckpt, game="boxing", out=run.parent / "boxing.gif", max_steps=150, seed=seed, sample=sample)
    assert (rec.score, rec.deterministic, rec.seed) == (score, not sample, seed)


class _RandomAgent:
    """A policy stand-in that keeps every observation it is shown."""

    def __init__(self, n_actions, seed=0):
        self.rng, self.n, self.seen = np.random.default_rng(seed), n_actions, []

    def act(self, obs, head, *, deterministic=True, generator=None):
        self.seen.append(np.array(obs[0, -1]))
        return self.rng.integers(self.n, size=len(obs))


def _gray84(rgb):
    return cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (84, 84), interpolation=cv2.INTER_AREA).astype(int)


@pytest.mark.parametrize("backend", ["ale", "sb3"])
@pytest.mark.parametrize("name", ["kungfu", "boxing"])
def test_screens_are_in_step_with_observations(backend, name):
    game = get_game(name)
    agent, frames = _RandomAgent(game.n_actions), []
    result = play(agent, 0, game, EnvConfig(backend=backend), seed=10_003, max_steps=300, on_frame=frames.append)
    assert result.steps == 300 and len(frames) == 301
    # Screen t (after t steps) is the newest frame of observation t, up to the gray conversion and
    # the max over the step's last two frames (measured: mean gray-level error ~0.1-0.35, 90th
    # percentile <= 0.5); a one-step shift is about five times further away.
    same = [np.abs(_gray84(frames[t]) - agent.seen[t]).mean() for t in range(300)]
    shifted = [np.abs(_gray84(frames[t + 1]) - agent.seen[t]).mean() for t in range(299)]
    assert np.percentile(same, 90) < 0.75 and np.mean(same) < 0.4 * np.mean(shifted), \
        (np.percentile(same, 90), np.mean(same), np.mean(shifted))


@pytest.mark.parametrize("backend", ["ale", "sb3"])
def test_game_ending_inside_the_recording(backend):
    game = get_game("boxing")
    agent, frames = _RandomAgent(game.n_actions), []
    # The env's own time limit ends the game (at 50 steps; sb3 counts the no-op reset frames too).
    result = play(agent, 0, game, EnvConfig(backend=backend, max_episode_steps=50), seed=7, max_steps=80,
                  on_frame=frames.append)
    assert result.game_over and len(frames) == result.steps + 1
    assert result.steps == 50 if backend == "ale" else 40 <= result.steps <= 50


def test_lockstep_screen_refuses_to_drift():
    game = get_game("kungfu")
    from blip_rl.envs.atari import _LockstepScreen

    screen = _LockstepScreen(game, EnvConfig(), seed=1)
    try:
        screen.reset()
        with pytest.raises(RuntimeError, match="fell out of step"):
            screen.step(np.array([0]), 1, reward=100.0, done=False, info={"lives": 4})
    finally:
        screen.close()


def test_game_not_learned_lists_the_games_learned(run, tmp_path):
    with pytest.raises(ValueError, match=r"'boxing' was not learned by .*0_kungfu\.pt; it has learned: kungfu"):
        record_game(run / "checkpoints" / "0_kungfu.pt", game="boxing", out=tmp_path / "b.gif")
    assert not (tmp_path / "b.gif").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"out": "x.png"}, "must end in .gif or .mp4"),
    ({"fps": 60}, r"--fps must be an integer in 1\.\.50"),
    ({"max_steps": 0}, "--max-steps must be an integer >= 1"),
])
def test_bad_arguments(run, tmp_path, kwargs, message):
    kwargs = {"out": "x.gif", **kwargs}
    kwargs["out"] = tmp_path / kwargs["out"]
    with pytest.raises(ValueError, match=message):
        record_game(run / "checkpoints" / "latest.pt", game="kungfu", **kwargs)


def test_mp4_without_imageio_ffmpeg_says_what_to_install(run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    with pytest.raises(ImportError, match="imageio-ffmpeg"):
        record_game(run / "checkpoints" / "latest.pt", game="kungfu", out=tmp_path / "k.mp4")
    assert not (tmp_path / "k.mp4").exists()


def test_record_mp4_without_imageio_ffmpeg_is_a_user_error_naming_the_extra(run, tmp_path, monkeypatch, capsys):
    from blip_rl import cli

    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    code = cli.main(["record", str(run / "checkpoints" / "latest.pt"), "--game", "kungfu", "--out",
                     str(tmp_path / "k.mp4")])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'blip-rl[record]'" in err and "internal error" not in err, err
    assert [line for line in err.splitlines() if line.startswith("blip-rl: error")] == err.strip().splitlines()[-1:]
    assert not (tmp_path / "k.mp4").exists()


@pytest.mark.parametrize("module, extra", [("matplotlib", "report"), ("ray", "ray")])
def test_every_optional_package_is_one_error_path(monkeypatch, module, extra):
    from blip_rl.errors import MissingExtraError, UserError, require

    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtraError, match=rf"pip install 'blip-rl\[{extra}\]'") as info:
        require(module, extra=extra, purpose="a test")
    assert isinstance(info.value, UserError) and isinstance(info.value, ImportError)


@pytest.mark.skipif(importlib.util.find_spec("imageio_ffmpeg") is None, reason="needs imageio-ffmpeg")
def test_mp4(run, tmp_path):
    import imageio_ffmpeg

    rec = record_game(run / "checkpoints" / "latest.pt", game="kungfu", out=tmp_path / "k.mp4", max_steps=25)
    reader = imageio_ffmpeg.read_frames(str(tmp_path / "k.mp4"))
    meta = next(reader)
    assert meta["size"] == (160, 210) and meta["fps"] == 30
    assert sum(1 for _ in reader) == rec.frames == 26


def test_cli_prints_the_score(run, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="blip-rl")
    rec_mod.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["record", str(run / "checkpoints" / "latest.pt"), "--game", "boxing",
                              "--out", str(tmp_path / "b.gif"), "--max-steps", "30"])
    assert args.func(args, []) == 0
    out = capsys.readouterr().out
    score = json.loads((run / "results.json").read_text())["raw"][-1][1]
    assert f"score {score:g} in 30 steps" in out and "31 frames" in out
    assert (tmp_path / "b.gif").stat().st_size > 0
