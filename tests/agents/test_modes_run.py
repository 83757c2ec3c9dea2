"""Game modes as tasks, end to end: train two modes of one game, eval each by name, report."""
import json

import pytest

from tests._cli import TINY, blip_rl


def test_two_modes_of_one_game_train_eval_and_report(tmp_path):
    run_dir = tmp_path / "modes"
    out = blip_rl("train", "--games", "spaceinvaders,spaceinvaders:mode=4", "--method", "blip", "--run-dir", run_dir,
                  "--set", "env.backend=sb3", "--set", "eval.every=0", *TINY)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["tasks"] == ["spaceinvaders", "spaceinvaders-mode4"] and len(results["raw"]) == 2
    assert (run_dir / "checkpoints" / "1_spaceinvaders-mode4.pt").is_file()
    assert "spaceinvaders-mode4" in out.stdout
    # A non-default mode has no reference score: its normalized score is missing, never zero.
    assert results["normalized"][1][1] is None and results["normalized"][1][0] is not None
    ckpt = run_dir / "checkpoints" / "1_spaceinvaders-mode4.pt"
    for name in ("spaceinvaders-mode4", "spaceinvaders:mode=4"):
        got = json.loads(blip_rl("eval", ckpt, "--game", name, "--json").stdout)
        assert got["game"] == "spaceinvaders-mode4" and got["mean"] == results["raw"][1][1]
    base = json.loads(blip_rl("eval", ckpt, "--game", "spaceinvaders", "--json").stdout)
    assert base["mean"] == results["raw"][1][0]
    pytest.importorskip("matplotlib")
    blip_rl("report", run_dir, "--out", tmp_path / "rep")
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert summary["games"] == ["spaceinvaders", "spaceinvaders-mode4"]


def test_unknown_mode_and_normalization_are_one_line_errors(tmp_path):
    run_dir = tmp_path / "bad"
    bad = blip_rl("train", "--games", "spaceinvaders:mode=99", "--run-dir", run_dir, *TINY, check=False)
    assert bad.returncode == 2 and "ALE offers modes 0, 1, 2" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    bad = blip_rl("train", "--games", "kungfu", "--set", "normalization=atari", "--run-dir", run_dir, *TINY,
                  check=False)
    assert bad.returncode == 2 and "normalization must be one of ppo, human, none" in bad.stderr
    assert not run_dir.exists()


def test_a_game_without_a_reference_warns_once_at_start(tmp_path):
    run_dir = tmp_path / "tetris"
    out = blip_rl("train", "--games", "tetris", "--run-dir", run_dir, "--set", "eval.every=0", *TINY)
    assert out.stdout.count("warning: no ppo reference score for tetris") == 1
    results = json.loads((run_dir / "results.json").read_text())
    assert results["normalized"] == [[None]]
