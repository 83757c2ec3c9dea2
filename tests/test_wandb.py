"""Weights & Biases, offline (no network here): a two-task MinAtar run mirrored to one W&B run,
kill -9 + --resume continuing it; no wandb import without the flag; bad input is one line."""
import json
import os
import signal
import struct
import subprocess
import sys
import time

import pytest
import torch

from tests._cli import PINNED, blip_rl, command

wandb = pytest.importorskip("wandb")

GAMES = "minatar-breakout,minatar-freeway"
RUN = ["--games", GAMES, "--method", "blip", "--steps-per-game", "1024", "--n-envs", "2", "--set", "ppo.n_steps=64",
       "--set", "ppo.n_minibatches=2", "--eval-episodes", "2", "--set", "eval.max_episode_steps=40",
       "--set", "fisher_samples=64", "--set", "checkpoint_every=128", "--device", "cpu", "--threads", "1",
       "--no-progress", *PINNED]


def _wait_for_checkpoint(proc, run_dir, *, after_step, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            if torch.load(run_dir / "checkpoints" / "progress.pt", weights_only=True)["global_step"] > after_step:
                return
        except Exception:  # not there yet, or being written
            pass
        time.sleep(0.05)
    raise AssertionError("the run ended before the checkpoint; " + proc.stderr.read().decode())


def _records(path):
    """The records of a W&B transaction log (``run-ID.wandb``: a ``:W&B`` header, then LevelDB
    log blocks of 32 KiB whose records are ``Record`` protobufs)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:8]
    pos, block, chunks = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        length, kind = struct.unpack("<HB", data[pos + 4:pos + 7]) if left >= 7 else (0, 0)
        if left < 7 or (length == 0 and kind == 0):  # the block's padding
            pos += left
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        chunks = chunk if kind in (1, 2) else chunks + chunk  # FULL / FIRST start a record
        if kind in (1, 4):  # FULL / LAST end it
            record = pb.Record()
            record.ParseFromString(chunks)
            yield record


def _offline_run(folder):
    """Config, history rows (key -> JSON value) and summary of one offline W&B run folder."""
    (log,) = folder.glob("run-*.wandb")
    config, history, summary = {}, [], {}
    for record in _records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            config.update({u.key: json.loads(u.value_json) for u in record.run.config.update})
        elif kind == "config":
            config.update({u.key: json.loads(u.value_json) for u in record.config.update})
        elif kind == "history":
            history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            summary.update({u.key or "/".join(u.nested_key): json.loads(u.value_json) for u in record.summary.update})
    return config, history, summary


@pytest.fixture()
def offline(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    env.pop("WANDB_DIR", None)
    return env


def test_a_run_and_its_resume_are_one_offline_wandb_run(offline, tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(command("train", *RUN, "--wandb", "blip-rl-test", "--run-dir", run_dir),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=offline)
    # Ctrl-C in the second game: the run checkpoints and finishes its W&B run (a kill -9 loses
    # what W&B had not written yet: docs/files.md, "Weights & Biases").
    _wait_for_checkpoint(proc, run_dir, after_step=1024 + 256)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 128 + signal.SIGINT, proc.stderr.read().decode()
    stopped_at = torch.load(run_dir / "checkpoints" / "progress.pt", weights_only=True)["global_step"]
    out = subprocess.run(command("train", "--resume", run_dir, "--no-progress"), capture_output=True, text=True,
                         env=offline, timeout=300)
    assert out.returncode == 0, out.stderr
    ident = json.loads((run_dir / "wandb.json").read_text())
    assert ident["project"] == "blip-rl-test"
    first, resumed = sorted((run_dir / "wandb").glob(f"offline-run-*-{ident['id']}"))  # one W&B run, twice
    config, history, _ = _offline_run(first)
    assert config["games"] == GAMES.split(",") and config["method"] == "blip" and config["wandb"]["project"]
    acc_norm = [(h["global_step"], h["eval/accumulated_normalized"]) for h in history
                if "eval/accumulated_normalized" in h]
    assert acc_norm and acc_norm[0][0] == 1024  # after the first game, at the run's own step
    assert any("train/loss" in h for h in history)  # SB3's own scalars too
    heatmaps = list(first.glob("files/media/images/bits_heatmap/*.png"))
    assert heatmaps and any(k.startswith("bits_heatmap/") for h in history for k in h)
    _, after, summary = _offline_run(resumed)
    steps = [h["global_step"] for h in after if "eval/accumulated_normalized" in h]
    assert steps and min(steps) > stopped_at - 256 and max(steps) == 2048  # it goes on where it stopped
    assert any(k.startswith("results/raw") for h in after for k in h) and "acc" in summary
    results = json.loads((run_dir / "results.json").read_text())
    assert summary["acc"] == pytest.approx(results["acc"])


def test_without_the_flag_nothing_imports_wandb(tmp_path):
    script = ("import sys, blip_rl; blip_rl.train(games=['minatar-breakout'], run_dir=sys.argv[1], steps_per_game=128, "
              "n_envs=2, ppo={'n_steps': 64}, eval__episodes=1, eval__max_episode_steps=20, fisher_samples=32, "
              "threads=1, precision='fp32'); assert 'wandb' not in sys.modules, 'wandb was imported'")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "r")], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert not (tmp_path / "r" / "wandb.json").exists()


def test_wandb_missing_or_its_dir_unwritable_is_one_line_and_nothing_written(offline, tmp_path):
    fake = tmp_path / "site"
    (fake / "wandb").mkdir(parents=True)
    (fake / "wandb" / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = {**offline, "PYTHONPATH": f"{fake}{os.pathsep}{offline.get('PYTHONPATH', '')}"}
    out = subprocess.run(command("train", *RUN, "--wandb", "p", "--run-dir", tmp_path / "a"), capture_output=True,
                         text=True, env=env, timeout=300)
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0, out.stderr
    assert "pip install 'blip-rl[wandb]'" in out.stderr and not (tmp_path / "a").exists()

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    out = blip_rl("train", *RUN, "--wandb", "p", "--set", f"wandb.dir={blocker / 'w'}", "--run-dir", tmp_path / "b",
                  check=False)
    assert out.returncode == 2 and "W&B cannot write its files" in out.stderr and not (tmp_path / "b").exists()
    assert blocker.read_text() == "not a directory"
