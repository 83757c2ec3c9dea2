"""Faults: kill -9 and resume, SIGTERM, bad input, fuzzed CLI and config."""
import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blip_rl.config import ConfigError, load_config
from tests._props import examples
from tests._cli import TINY, blip_rl, command

#: Long enough to be killed in the middle: 4 updates per game, resumable checkpoint each update.
RUN = ["--games", "kungfu,boxing", *[a for a in TINY if a != "128"], "--set", "checkpoint_every=128"]
RUN[RUN.index("--steps-per-game") + 1:RUN.index("--steps-per-game") + 1] = ["1024"]


def _check_complete(run_dir: Path) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    assert results["tasks"] == ["kungfu", "boxing"] and len(results["raw"]) == 2
    assert results["raw"][0][1] is None and results["raw"][1][1] is not None
    # Each game's budget was learned exactly once: no game repeated or skipped.
    assert results["steps"] == [1024, 2048]
    for name in ("0_kungfu.pt", "1_boxing.pt", "latest.pt"):
        payload = torch.load(run_dir / "checkpoints" / name, weights_only=True)
        assert payload["tasks_done"] == (1 if name.startswith("0") else 2)
    assert not list(run_dir.rglob("*.tmp"))


def test_kill_9_at_random_moments_then_resume_completes(tmp_path):
    run_dir = tmp_path / "run"
    rng = random.Random(1234)
    proc = subprocess.Popen(command("train", "--run-dir", run_dir, *RUN), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    kills = 0
    for _ in range(3):
        # Kill at a random moment once the process is past start-up (its run dir exists).
        deadline = time.time() + 120
        while not (run_dir / "config.yaml").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(rng.uniform(1.0, 6.0))
        if proc.poll() is not None:
            break
        proc.kill()
        proc.wait()
        kills += 1
        # Every file that exists is whole: results parse, checkpoints load.
        if (run_dir / "results.json").exists():
            json.loads((run_dir / "results.json").read_text())
        for ckpt in (run_dir / "checkpoints").glob("*.pt") if (run_dir / "checkpoints").exists() else []:
            torch.load(ckpt, weights_only=True)
        proc = subprocess.Popen(command("train", "--resume", run_dir, "--no-progress"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()
    assert kills >= 1
    _check_complete(run_dir)


def test_sigterm_saves_a_checkpoint_and_names_the_resume_command(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(command("train", "--run-dir", run_dir, *RUN), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run_dir / "checkpoints" / "progress.pt").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    # The signal comes at the first periodic checkpoint (step 128 of 2,048): the run must stop.
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert f"blip-rl train --resume {run_dir}" in err and "Traceback" not in err
    blip_rl("train", "--resume", run_dir, "--no-progress")
    _check_complete(run_dir)
    again = blip_rl("train", "--resume", run_dir, "--no-progress")
    assert "is complete" in again.stdout


@pytest.mark.parametrize("args,message", [
    (["--set", "ppo.n_steps=abc"], "must be an integer"),
    (["--set", "fast=maybe"], "true or false"),
    (["--set", "eval=3"], "mapping"),
    (["--set", "nope"], "KEY=VALUE"),
    (["--config", "missing.yaml"], "does not exist"),
])
def test_bad_values_are_clear_errors(tmp_path, args, message):
    out = blip_rl("train", "--games", "kungfu", "--run-dir", tmp_path / "r", *args, check=False)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_unwritable_run_dir_and_bad_resume_are_clear_errors(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    out = blip_rl("train", "--games", "kungfu", "--run-dir", blocker / "run", *TINY, check=False)
    assert out.returncode == 2 and "cannot write to run dir" in out.stderr
    out = blip_rl("train", "--resume", tmp_path / "nothing", check=False)
    assert out.returncode == 2 and "does not exist" in out.stderr
    (tmp_path / "empty").mkdir()
    out = blip_rl("train", "--resume", tmp_path / "empty", check=False)
    assert out.returncode == 2 and "not a blip-rl run dir" in out.stderr


def test_checkpoint_of_another_version_is_refused(tmp_path):
    from blip_rl.agents.checkpoint import CheckpointError, load_checkpoint

    torch.save({"format": "blip-rl/atari-ppo", "version": 99}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(tmp_path / "future.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a blip-rl"):
        load_checkpoint(tmp_path / "other.pt")


values = st.one_of(st.none(), st.booleans(), st.integers(-10**9, 10**9), st.floats(allow_nan=True),
                   st.text(max_size=12), st.lists(st.text(max_size=6), max_size=3),
                   st.dictionaries(st.text(max_size=8), st.integers(), max_size=2))
keys = st.one_of(st.sampled_from(["games", "method", "steps_per_game", "env.n_envs", "ppo.n_steps", "eval",
                                  "blip.f_prior", "blip.ig_rule", "fast", "ppo", "eval.every", "seed",
                                  "methods", "methods.blip.f_prior", "methods.ewc", "method_options.strength",
                                  "max_bits"]),
                 st.text(max_size=12))


@settings(max_examples=examples(300), deadline=None)
@given(st.dictionaries(keys, values, max_size=4))
def test_config_parser_fuzz_raises_only_config_errors(overrides):
    try:
        load_config(None, overrides)
    except ConfigError:
        pass


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["--games", "kungfu", "pong,", ",", "--n-envs", "-1", "0", "3", "--seed", "x",
                                 "--method", "blip", "ewc", "--set", "a=b", "ppo.n_steps=2", "--steps-per-game",
                                 "1e9", "--f-prior", "-1", "nan", "--ig-rule", "official", "--fast"]), max_size=8))
def test_cli_fuzz_gives_clean_errors(tmp_path, monkeypatch, argv):
    import blip_rl.agents.learner as learner_mod
    from blip_rl import cli

    class Reached(Exception):
        pass

    def refuse(*args, **kwargs):
        raise Reached

    monkeypatch.setattr(learner_mod, "PPOLearner", refuse)
    run_dir = tmp_path / f"run{random.random()}"
    try:
        code = cli.main(["train", "--run-dir", str(run_dir), *argv])
    except Reached:
        return  # the input was valid: training would have started
    except SystemExit as exc:  # argparse's own usage errors exit 2 with a message
        assert exc.code == 2
        return
    assert code == 2


def test_the_one_format_refuses_a_newer_version_and_another_learners_checkpoint(tmp_path):
    from blip_rl.agents.checkpoint import CheckpointError, load_checkpoint

    torch.save({"format": "blip-rl/checkpoint", "version": 99, "learner": "atari-ppo"}, tmp_path / "newer.pt")
    with pytest.raises(CheckpointError, match="version 99.*reads version 2"):
        load_checkpoint(tmp_path / "newer.pt")
    torch.save({"format": "blip-rl/checkpoint", "version": 2, "learner": "classification"}, tmp_path / "cls.pt")
    with pytest.raises(CheckpointError, match="classification checkpoint.*blip-rl classify"):
        load_checkpoint(tmp_path / "cls.pt")


def test_a_checkpoint_of_the_earlier_atari_format_still_evaluates(tmp_path):
    """blip-rl 0.1 wrote Atari checkpoints as format blip-rl/atari-ppo, version 1 (flat, method
    state only, no spec): they are upgraded on read, and eval plays them."""
    run_dir = tmp_path / "run"
    blip_rl("train", "--games", "boxing", "--method", "ewc", "--run-dir", run_dir, *TINY)
    new = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)
    old = {"format": "blip-rl/atari-ppo", "version": 1, "blip_rl_version": "0.1.0", "games": ["boxing"],
           "tasks_done": new["tasks_done"], "global_step": new["global_step"], "method": new["method"]["state"],
           **{k: new["state"][k] for k in ("n_actions", "extractor_kwargs", "frame_stack", "policy", "config")}}
    torch.save(old, tmp_path / "old.pt")
    out = json.loads(blip_rl("eval", tmp_path / "old.pt", "--game", "boxing", "--json").stdout)
    assert out["mean"] == json.loads((run_dir / "results.json").read_text())["raw"][0][0]
    from blip_rl.agents.checkpoint import load_checkpoint, load_method

    policy, payload = load_checkpoint(tmp_path / "old.pt")
    method = load_method(payload, policy)
    assert method.name == "ewc" and method.ewc_lambda == 5000.0 and method.fisher
