"""Running the blip-rl command in a subprocess, with tiny budgets, for tests."""
import subprocess
import sys

#: A two-game run that takes seconds: 2 envs, 64-step rollouts, a small trunk, 1 short evaluation game.
TINY = ["--steps-per-game", "128", "--n-envs", "2", "--set", "ppo.n_steps=64", "--set", "ppo.n_minibatches=2",
        "--eval-episodes", "1", "--set", "eval.max_episode_steps=60", "--set", "eval.n_envs=1",
        "--set", "fisher_samples=64", "--set", "features_dim=64", "--device", "cpu", "--no-progress"]


def command(*args):
    return [sys.executable, "-m", "blip_rl.cli", *map(str, args)]


def blip_rl(*args, check=True, timeout=300):
    out = subprocess.run(command(*args), capture_output=True, text=True, timeout=timeout)
    if check:
        assert out.returncode == 0, out.stdout + out.stderr
    return out
