"""Plasticity metrics in a real run: at every evaluation, in TensorBoard's plasticity/ group and in
results.json's evaluation records; the plasticity baselines through train and resume."""
import json

import pytest

from tests._cli import TINY, blip_rl

pytest.importorskip("minatar")


def _tb_tags(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    return set(acc.Tags()["scalars"])


def test_every_evaluation_records_plasticity_and_blip_capacity(tmp_path):
    run_dir = tmp_path / "blip"
    blip_rl("train", "--games", "minatar-breakout,minatar-freeway", "--method", "blip", *TINY,
            "--set", "ppo.n_steps=32", "--set", "eval.every=64", "--run-dir", run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    points = results["curve"]
    assert len(points) >= 4 and all("plasticity" in p for p in points)
    last = points[-1]["plasticity"]
    for task in ("minatar-breakout", "minatar-freeway"):
        assert 0 <= last[f"{task}/dormant"] <= 1 and last[f"{task}/srank"] >= 1
    assert 0 <= last["capacity_free/cnn.0"] <= 1 and last["capacity_free/cnn.0"] < 1  # bits frozen after task 1
    assert points[0]["plasticity"]["capacity_free/linear.0"] == 1.0  # nothing frozen while learning task 1
    assert last["grad_norm"] > 0 and last["weight_magnitude/linear.0"] > 0
    assert "diagnostics" in results["time_s"]
    tags = _tb_tags(run_dir)
    assert "plasticity/minatar-breakout/dormant" in tags and "plasticity/capacity_full/linear.0" in tags


@pytest.mark.parametrize("method, options", [
    ("redo", ["--set", "methods.redo.interval=1", "--set", "methods.redo.tau=0.5"]),
    ("l2-init", []),
    ("shrink-perturb", ["--set", "methods.shrink-perturb.schedule=step"]),
])
def test_plasticity_baselines_train_and_resume(tmp_path, method, options):
    run_dir = tmp_path / method
    blip_rl("train", "--games", "minatar-breakout,minatar-freeway", "--method", method, *TINY, *options,
            "--run-dir", run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    assert len(results["raw"]) == 2 and results["method"] == method
    out = blip_rl("train", "--resume", run_dir).stdout  # a finished run: nothing to do, said so
    assert "complete" in out


@pytest.mark.parametrize("options, what", [
    (["--method", "redo", "--set", "methods.redo.tau=-1"], "tau"),
    (["--method", "l2-init", "--set", "methods.l2-init.strength=-1"], "strength"),
    (["--method", "shrink-perturb", "--set", "methods.shrink-perturb.schedule=often"], "schedule"),
])
def test_plasticity_options_out_of_range_are_one_line_and_write_nothing(tmp_path, options, what):
    run_dir = tmp_path / "run"
    proc = blip_rl("train", "--games", "minatar-breakout", *options, *TINY, "--run-dir", run_dir, check=False)
    assert proc.returncode == 2 and what in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not run_dir.exists()
