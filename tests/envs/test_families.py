"""Environment families: a Gymnasium env and a whole family defined outside blip-rl run through
every command with no edit to the project; bad input is one line, exit 2, nothing written."""
import json
import os
import subprocess

import pytest
import torch

from tests._cli import PINNED, command, kill_when_resumable

#: A tiny grid game in a throwaway module: the agent (channel 0) walks to the goal (channel 1) of
#: a 6x6 grid, HxWxC uint8 images; two goals make two tasks. Registered when the module is imported.
TINYGRID = '''
import gymnasium as gym
import numpy as np


class TinyGrid(gym.Env):
    def __init__(self, goal=(5, 5)):
        self.goal = goal
        self.observation_space = gym.spaces.Box(0, 255, (6, 6, 2), np.uint8)
        self.action_space = gym.spaces.Discrete(4)

    def _obs(self):
        obs = np.zeros((6, 6, 2), np.uint8)
        obs[self.pos[0], self.pos[1], 0] = 255
        obs[self.goal[0], self.goal[1], 1] = 255
        return obs

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = [int(x) for x in self.np_random.integers(0, 6, 2)]
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        dy, dx = [(-1, 0), (1, 0), (0, -1), (0, 1)][int(action)]
        self.pos = [min(5, max(0, self.pos[0] + dy)), min(5, max(0, self.pos[1] + dx))]
        self.t += 1
        done = self.pos == list(self.goal)
        return self._obs(), float(done), done, self.t >= 30, {}


gym.register("TinyGridA-v0", entry_point=TinyGrid, kwargs={"goal": (5, 5)})
gym.register("TinyGridB-v0", entry_point=TinyGrid, kwargs={"goal": (0, 0)})
'''

#: A family of its own (tasks "tiles-a", "tiles-b": the grid above as flat vectors), registered
#: with blip-rl when its module is imported (named in BLIP_RL_FAMILIES).
TILES = '''
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from blip_rl.envs.family import EnvFamily, register_family
import tinygrid


class Tile:
    family = "tiles"

    def __init__(self, which):
        self.name = self.spec = f"tiles-{which}"
        self.title = f"Tiles {which.upper()}"
        self.n_actions = 4
        self.goal = (5, 5) if which == "a" else (0, 0)


class Flat:
    def __init__(self, env):
        self.env = env


class Tiles(EnvFamily):
    name = "tiles"
    description = "a test family"
    example = "tiles-a"

    def owns(self, spec):
        return spec.startswith("tiles-")

    def get(self, spec):
        if spec not in ("tiles-a", "tiles-b"):
            from blip_rl.errors import UserError
            raise UserError(f"unknown tiles task {spec!r}; there are tiles-a, tiles-b")
        return Tile(spec[-1])

    def tasks(self):
        return [Tile("a"), Tile("b")]

    def observation_space(self, task, env_cfg):
        return spaces.Box(0.0, 1.0, (72,), np.float32)

    def make_vec_env(self, task, *, n_envs, seed, training, env_cfg, num_threads=0, max_episode_steps=None):
        import gymnasium as gym

        space = self.observation_space(task, env_cfg)

        def make():
            env = tinygrid.TinyGrid(goal=task.goal)
            env = gym.wrappers.TransformObservation(env, lambda o: (o.reshape(-1) / 255).astype(np.float32), space)
            return Monitor(env)

        venv = DummyVecEnv([make] * n_envs)
        venv.seed(seed)
        return venv

    def reference(self, task, normalization):
        return (0.0, 1.0) if normalization == "ppo" else None


register_family(Tiles())
'''

RUN = ["--steps-per-game", "512", "--n-envs", "2", "--set", "ppo.n_steps=64", "--set", "ppo.n_minibatches=2",
       "--eval-episodes", "2", "--set", "eval.max_episode_steps=40", "--set", "fisher_samples=64",
       "--set", "checkpoint_every=128", "--device", "cpu", "--threads", "1", "--no-progress", *PINNED]
GRID = "gym:tinygrid:TinyGridA-v0,gym:tinygrid:TinyGridB-v0"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("families")
    (folder / "tinygrid.py").write_text(TINYGRID)
    (folder / "tiles_family.py").write_text(TILES)
    path = os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "BLIP_RL_FAMILIES": "tiles_family"}


def run(env, *args, check=True):
    out = subprocess.run(command(*args), capture_output=True, text=True, env=env, timeout=600)
    if check:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


def _kill_in_second_task(env, args, run_dir):
    proc = subprocess.Popen(command(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    kill_when_resumable(proc, run_dir, after_step=512)


def test_a_gymnasium_env_from_a_temp_folder_trains_resumes_evaluates_and_reports(env, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    args = ["train", "--games", GRID, "--method", "blip", *RUN]
    run(env, *args, "--run-dir", whole)
    _kill_in_second_task(env, [*args, "--run-dir", killed], killed)
    run(env, "train", "--resume", killed, "--no-progress")
    results = json.loads((killed / "results.json").read_text())
    assert results["tasks"] == ["gym-tinygrid-tinygrida-v0", "gym-tinygrid-tinygridb-v0"]
    assert results["steps"] == [512, 1024] and results["raw"][1][0] is not None
    reference = json.loads((whole / "results.json").read_text())
    assert results["raw"] == reference["raw"]  # kill -9 + resume trains what one run trains
    payload = torch.load(killed / "checkpoints" / "latest.pt", weights_only=True)
    assert payload["state"]["extractor_kwargs"]["trunk"] == "minatar"  # a small image: the small conv
    assert payload["state"]["obs_space"]["shape"] == [2, 6, 6]  # HxWxC given channel-first

    first = killed / "checkpoints" / "0_gym-tinygrid-tinygrida-v0.pt"
    out = json.loads(run(env, "eval", first, "--game", "gym:tinygrid:TinyGridA-v0", "--json").stdout)
    assert out["mean"] == results["raw"][0][0]
    # the task's safe name works too
    out = json.loads(run(env, "eval", killed / "checkpoints" / "latest.pt", "--game", "gym-tinygrid-tinygrida-v0",
                         "--json").stdout)
    assert out["mean"] == results["raw"][1][0]
    run(env, "report", killed, "--out", tmp_path / "report")
    assert "gym-tinygrid-tinygrida-v0" in (tmp_path / "report" / "table.md").read_text()


def test_a_family_defined_outside_the_project_runs_every_command(env, tmp_path):
    run_dir = tmp_path / "tiles"
    run(env, "train", "--games", "tiles-a,tiles-b", "--method", "ewc", *RUN, "--run-dir", run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["tasks"] == ["tiles-a", "tiles-b"] and results["normalized"][1][0] is not None
    payload = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)
    assert payload["state"]["extractor_kwargs"]["trunk"] == "mlp" and payload["state"]["family"] == "tiles"
    out = json.loads(run(env, "eval", run_dir / "checkpoints" / "latest.pt", "--game", "tiles-a", "--json").stdout)
    assert out["mean"] == results["raw"][1][0]
    listing = run(env, "games").stdout
    assert "tiles-a" in listing and "minatar-breakout" in listing
    # a checkpoint of one family, asked for another family's game: one line, exit 2
    wrong = run(env, "eval", run_dir / "checkpoints" / "latest.pt", "--game", "minatar-breakout", check=False)
    assert wrong.returncode == 2 and "tiles" in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("games, message", [
    ("minatar-pong", "there are: minatar-asterix"),
    ("gym:NoSuchEnv-v0", "gymnasium.make failed"),
    ("gym:Pendulum-v1", "Discrete actions only"),
    ("gym:tinygrid:TinyGridA-v0,minatar-breakout", "need one observation shape"),
    ("gym:nosuchmodule:Env-v0", "gymnasium.make failed"),
])
def test_bad_tasks_are_one_line_and_write_nothing(env, tmp_path, games, message):
    out = run(env, "train", "--games", games, "--run-dir", tmp_path / "run", *RUN, check=False)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path / "run").exists()


def test_an_unknown_family_module_is_one_line(env, tmp_path):
    bad = {**env, "BLIP_RL_FAMILIES": "no_such_family_module"}
    out = run(bad, "train", "--games", "kungfu", "--run-dir", tmp_path / "run", *RUN, check=False)
    assert out.returncode == 2 and "no_such_family_module" in out.stderr
    assert not (tmp_path / "run").exists()
