"""The baselines run through every command, like BLIP: train (Atari), eval, resume, classify."""
import json

import pytest

from tests._cli import TINY, blip_rl


@pytest.mark.parametrize("method", ["l2", "mas", "si", "packnet", "bc-replay", "shrink-perturb"])
def test_baseline_trains_two_games_and_eval_rebuilds_it(tmp_path, method):
    run_dir = tmp_path / method
    blip_rl("train", "--games", "kungfu,boxing", "--method", method, "--run-dir", run_dir, *TINY)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["method"] == method and len(results["raw"]) == 2
    out = json.loads(blip_rl("eval", run_dir / "checkpoints" / "1_boxing.pt", "--game", "kungfu", "--json").stdout)
    assert out["mean"] == results["raw"][1][0]
    again = blip_rl("train", "--resume", run_dir, "--no-progress")
    assert "is complete" in again.stdout


@pytest.mark.parametrize("method", ["l2", "mas", "si", "packnet", "bc-replay", "shrink-perturb"])
def test_baseline_runs_a_classification_benchmark(tmp_path, method):
    pytest.importorskip("sklearn")
    run_dir = tmp_path / method
    blip_rl("classify", "--benchmark", "digits5", "--method", method, "--epochs", "2", "--set", "model.hidden=16",
            "--run-dir", run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["method"] == method and results["tasks_learned"] == 5
    out = json.loads(blip_rl("eval", run_dir / "checkpoints" / "latest.pt", "--task", "digits-0-1", "--json").stdout)
    assert out["accuracy"] == pytest.approx(results["raw"][-1][0]) and out["method"] == method
