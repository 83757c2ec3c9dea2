"""`blip-rl train` / `eval` / `games` through the command line, in subprocesses."""
import json

import pytest

from tests._cli import TINY, TINY_ANY_PRECISION, assert_same_run, blip_rl

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for method in ("blip", "ewc", "ft", "ft-fix"):
        out = blip_rl("train", "--games", "kungfu,boxing", "--method", method, "--run-dir", root / method, *TINY)
        (root / f"{method}.stdout").write_text(out.stdout)
    blip_rl("train", "--games", "kungfu,boxing", "--method", "blip", "--run-dir", root / "blip-again", *TINY)
    blip_rl("train", "--games", "kungfu,boxing", "--method", "blip", "--fast", "--run-dir", root / "blip-fast",
            *TINY_ANY_PRECISION)
    return root


@pytest.mark.parametrize("method", ["blip", "ewc", "ft", "ft-fix"])
def test_two_game_run_writes_every_file(runs, method):
    run = runs / method
    for name in ("config.yaml", "command.txt", "system_info.txt", "results.json", "results.csv",
                 "checkpoints/0_kungfu.pt", "checkpoints/1_boxing.pt", "checkpoints/latest.pt"):
        assert (run / name).is_file(), name
    results = json.loads((run / "results.json").read_text())
    assert results["method"] == method and results["tasks"] == ["kungfu", "boxing"]
    # One evaluation game per game, each cut at TINY's 60-step limit, counted per row and game.
    assert results["episodes"] == [[1, None], [1, 1]] and results["cut"] == [[1, None], [1, 1]]
    assert set(results["time_s"]) == {"training", "evaluation", "consolidation", "checkpoints", "diagnostics"}
    assert results["work"]["training"] == 256
    stdout = (runs / f"{method}.stdout").read_text()
    # The first line says what was chosen for this machine; the last lines split the wall time.
    import yaml

    runtime = yaml.safe_load((run / "config.yaml").read_text())["runtime"]
    assert runtime["precision"] in ("fp32", "bf16") and runtime["device"] == "cpu" and runtime["precision_reason"]
    first = stdout.splitlines()[0]
    assert first.startswith(f"blip-rl: cpu, {runtime['precision']} ({runtime['precision_reason']})"), first
    assert f"{runtime['torch_threads']} torch" in first
    assert "time " in stdout and "training " in stdout and "evaluation " in stdout and "Fisher/consolidation" in stdout
    info = (run / "system_info.txt").read_text()
    assert f"precision: {runtime['precision']} ({runtime['precision_reason']})" in info and "ale-py ROMs:" in info
    assert len(results["raw"]) == 2 and results["raw"][0][1] is None and results["raw"][1][1] is not None
    assert results["acc"] is not None
    assert "method blip" not in (run / "command.txt").read_text() or method == "blip"


def test_tensorboard_tags_are_written(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags, images = set(), set()
    for f in (runs / "blip" / "tb").glob("events.out.tfevents.*"):
        ea = EventAccumulator(str(f), size_guidance={"images": 0})
        ea.Reload()
        tags |= set(ea.Tags()["scalars"])
        images |= set(ea.Tags()["images"])
    for tag in ("eval/kungfu/score", "eval/kungfu/normalized", "eval/boxing/score", "eval/accumulated_normalized",
                "continual/acc", "continual/bwt", "bits/cnn.4.weight/mean_bits", "bits/linear.0.weight/frac_any",
                "train/value_loss", "time/fps", "eval/kungfu/episode_steps", "eval/kungfu/cut_fraction"):
        assert tag in tags, (tag, sorted(tags))
    assert "bits_heatmap/cnn.4" in images


@pytest.mark.parametrize("run,flags", [("blip", []), ("blip-fast", ["--fast"])])
def test_eval_first_game_from_checkpoint_after_second(runs, run, flags):
    ckpt = runs / run / "checkpoints" / "1_boxing.pt"
    out = blip_rl("eval", ckpt, "--game", "kungfu", "--json", *flags)
    result = json.loads(out.stdout)
    assert result["game"] == "kungfu" and result["games_learned"] == ["kungfu", "boxing"]
    assert len(result["scores"]) == 1
    # Same seeds and settings as the run's own evaluation: the results matrix entry is reproduced.
    matrix = json.loads((runs / run / "results.json").read_text())["raw"]
    assert result["mean"] == matrix[1][0]


def test_eval_of_a_game_not_learned_lists_those_learned(runs):
    out = blip_rl("eval", runs / "blip" / "checkpoints" / "0_kungfu.pt", "--game", "boxing", check=False)
    assert out.returncode == 2
    assert "not learned" in out.stderr and "kungfu" in out.stderr and "Traceback" not in out.stderr


def test_existing_run_dir_is_refused_and_kept(runs):
    before = (runs / "ft" / "results.json").read_text()
    out = blip_rl("train", "--games", "kungfu", "--run-dir", runs / "ft", *TINY, check=False)
    assert out.returncode == 2 and "already exists" in out.stderr
    assert (runs / "ft" / "results.json").read_text() == before


@pytest.mark.parametrize("args,message", [
    (["--games", "kungfoo"], "unknown game"),
    (["--games", ""], "at least one game"),
    (["--games", "kungfu,kungfu"], "named twice"),
    (["--games", "kungfu", "--steps-per-game", "10"], "below one rollout"),
    (["--games", "kungfu", "--set", "ppo.n_step=3"], "did you mean ppo.n_steps"),
    (["--games", "kungfu", "--method", "sgd"], "method must be one of"),
])
def test_bad_input_is_a_clear_error(tmp_path, args, message):
    tiny = [a for a in TINY if a != "--no-progress"]
    out = blip_rl("train", "--run-dir", tmp_path / "r", *tiny, *args, check=False)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr.lower() or message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "r").exists()


def test_games_lists_the_registry():
    out = blip_rl("games")
    for name in ("kungfu", "boxing", "jamesbond", "krull", "riverraid", "spaceinvaders"):
        assert name in out.stdout


def test_same_seed_twice_gives_the_same_results(runs):
    assert_same_run(runs / "blip", runs / "blip-again", checkpoints=("0_kungfu.pt", "1_boxing.pt", "latest.pt"))


@pytest.mark.parametrize("name", ["0_kungfu.pt", "latest.pt"])
def test_eval_of_a_corrupt_checkpoint_is_a_clear_error(runs, tmp_path, name):
    data = (runs / "blip" / "checkpoints" / name).read_bytes()
    bad = tmp_path / name
    bad.write_bytes(data[: len(data) // 2])
    out = blip_rl("eval", bad, "--game", "kungfu", check=False)
    assert out.returncode == 2 and "corrupt or truncated" in out.stderr and "Traceback" not in out.stderr


def test_eval_reports_its_choices_progress_and_cut_games(runs):
    ckpt = runs / "blip" / "checkpoints" / "1_boxing.pt"
    result = json.loads(blip_rl("eval", ckpt, "--game", "boxing", "--json", "--episodes", "2").stdout)
    # TINY's 60-step limit cuts both games; the cost of the evaluation is in the output.
    assert result["cut"] == 2 and result["episode_steps"] == [60, 60] and result["max_episode_steps"] == 60
    assert result["precision"] in ("fp32", "bf16") and result["seconds"] > 0
    out = blip_rl("eval", ckpt, "--game", "boxing", "--episodes", "2", "--precision", "fp32", "--threads", "1")
    assert out.stderr.startswith("blip-rl: cpu, fp32 (asked for (--precision fp32)), 1 torch / 1 env threads")
    assert "eval boxing" in out.stderr and "2/2" in out.stderr  # its own progress bar
    assert "2 cut at 60 steps" in out.stdout


def test_games_piped_into_head_ends_quietly():
    import subprocess
    import sys

    out = subprocess.run(f"{sys.executable} -m blip_rl.cli games | head -2", shell=True, capture_output=True,
                         text=True, timeout=120)
    assert len(out.stdout.splitlines()) == 2 and "error" not in out.stderr.lower(), out.stderr


def test_eval_of_every_checkpoint_with_no_flags_reproduces_results_json(runs):
    """eval follows the checkpoint's own precision, device kind and threads, and the run's seeds."""
    run = runs / "blip"
    raw = json.loads((run / "results.json").read_text())["raw"]
    for k, name in enumerate(("0_kungfu.pt", "1_boxing.pt")):
        for j, game in enumerate(("kungfu", "boxing")[: k + 1]):
            out = blip_rl("eval", run / "checkpoints" / name, "--game", game, "--json")
            assert json.loads(out.stdout)["mean"] == raw[k][j], (name, game)
    out = blip_rl("eval", run / "checkpoints" / "latest.pt", "--game", "boxing", "--no-progress")
    assert "(as the checkpoint trained)" in out.stderr.splitlines()[0]


def test_eval_messages_name_the_fix(runs, tmp_path):
    import torch

    out = blip_rl("eval", runs / "blip", "--game", "kungfu", check=False)
    assert out.returncode == 2 and "is a run directory: pass" in out.stderr and "latest.pt" in out.stderr
    payload = torch.load(runs / "blip" / "checkpoints" / "latest.pt", weights_only=True)
    payload["tasks_done"] = 0  # as progress.pt saved inside the first game
    torch.save(payload, tmp_path / "progress.pt")
    out = blip_rl("eval", tmp_path / "progress.pt", "--game", "kungfu", check=False)
    assert out.returncode == 2 and "no game was finished when progress.pt was saved" in out.stderr
    out = blip_rl("eval", runs / "blip" / "checkpoints" / "0_kungfu.pt", "--game", "kungfoo", check=False)
    assert out.returncode == 2 and "did you mean kungfu?" in out.stderr


def test_a_finished_run_keeps_no_progress_checkpoint(runs):
    for method in ("blip", "ewc", "ft", "ft-fix"):
        assert not (runs / method / "checkpoints" / "progress.pt").exists()


def test_keep_checkpoints_last_writes_latest_only(tmp_path):
    blip_rl("train", "--games", "kungfu,boxing", "--run-dir", tmp_path / "r", *TINY, "--set", "keep_checkpoints=last",
            "--set", "checkpoint_every=64")
    assert sorted(p.name for p in (tmp_path / "r" / "checkpoints").iterdir()) == ["latest.pt"]
    out = blip_rl("eval", tmp_path / "r" / "checkpoints" / "latest.pt", "--game", "kungfu", "--json")
    assert json.loads(out.stdout)["mean"] == json.loads((tmp_path / "r" / "results.json").read_text())["raw"][1][0]


def test_the_blip_diagnosis_reads_a_run(runs):
    """benchmarks/blip_diagnosis.py (bits, pruned weights and dormant units after each game)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "blip_diagnosis.py"
    out = subprocess.run([sys.executable, str(script), str(runs / "blip")], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "after kungfu" in out.stdout and "after boxing" in out.stdout and "dormant units" in out.stdout
    assert "zero  0.0%" in out.stdout  # the default consolidation keeps theta: nothing pruned
