"""Running the blip-rl command in a subprocess, with tiny budgets, for tests."""
import subprocess
import sys

#: A two-game run that takes seconds: 2 envs, 64-step rollouts, a small trunk, 1 short evaluation game.
#: Tests that are not about ``--precision auto`` pin the precision (a machine's calibrated verdict
#: must not decide what they check); TINY_ANY_PRECISION is TINY without the pin.
PINNED = ["--precision", "fp32"]
TINY_ANY_PRECISION = ["--steps-per-game", "128", "--n-envs", "2", "--set", "ppo.n_steps=64",
                      "--set", "ppo.n_minibatches=2", "--eval-episodes", "1", "--set", "eval.max_episode_steps=60",
                      "--set", "eval.n_envs=1", "--set", "fisher_samples=64", "--set", "features_dim=64",
                      "--device", "cpu", "--no-progress"]
TINY = [*TINY_ANY_PRECISION, *PINNED]


def command(*args):
    return [sys.executable, "-m", "blip_rl.cli", *map(str, args)]


def blip_rl(*args, check=True, timeout=300):
    out = subprocess.run(command(*args), capture_output=True, text=True, timeout=timeout)
    if check:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


def _tensors(obj, prefix=""):
    """Every tensor in a nested checkpoint payload, by its path."""
    import torch

    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{prefix}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{prefix}/{i}")


def assert_same_run(a, b, checkpoints=("latest.pt",)):
    """Two run dirs of the same command: identical results.json (wall times aside) and
    identical tensors (policy, method state, drift states) in the named checkpoints."""
    import json

    import torch

    ra, rb = (json.loads((d / "results.json").read_text()) for d in (a, b))
    for r in (ra, rb):
        r.pop("time_s", None)
    assert ra == rb
    for name in checkpoints:
        pa, pb = (torch.load(d / "checkpoints" / name, weights_only=True) for d in (a, b))
        ta, tb = dict(_tensors({k: pa[k] for k in ("state", "method", "drift") if k in pa})), \
            dict(_tensors({k: pb[k] for k in ("state", "method", "drift") if k in pb}))
        assert ta.keys() == tb.keys() and ta, name
        different = [k for k in ta if not torch.equal(ta[k], tb[k])]
        assert not different, (name, different[:5])


def kill_when_resumable(proc, run_dir, *, after_step, timeout=300):
    """SIGKILL ``proc`` (a ``blip-rl train`` Popen) once its resumable checkpoint
    (``checkpoints/progress.pt``) is past env step ``after_step``; fails if it ends first."""
    import time

    import torch

    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        ckpt = run_dir / "checkpoints" / "progress.pt"
        if ckpt.exists():
            try:
                if torch.load(ckpt, weights_only=True)["global_step"] > after_step:
                    break
            except Exception:  # being written: try again
                pass
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; " + proc.stderr.read().decode()
    proc.kill()
    proc.wait()
