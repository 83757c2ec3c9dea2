"""``classify`` on a parser of our own (independent of blip_rl.cli), in process and in a subprocess."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml

from blip_rl.classification.cli import default_config_path, register
from blip_rl.classification.datasets import BENCHMARKS, DatasetNotFoundError

QUICK = ["--epochs", "2", "--set", "model.hidden=16", "--set", "model.hidden_layers=1"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="blip-rl")
    register(p.add_subparsers(dest="command", required=True))
    return p


def classify(argv: list[str]) -> int:
    args = parser().parse_args(["classify", *argv])
    return args.func(args, ["classify", *argv])


@pytest.fixture(autouse=True)
def keep_threads():
    before = torch.get_num_threads()
    yield
    assert torch.get_num_threads() == before  # the command restores the caller's setting


INPUT_SHAPES = {"mnist5": [1, 28, 28], "pmnist": [1, 28, 28], "cifar-alt": [3, 32, 32], "mixture5": [3, 32, 32],
                "miniimagenet": [3, 84, 84], "digits5": [1, 8, 8], "pdigits": [1, 8, 8]}


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_default_config_is_valid(name):
    """Each configs/classification/<benchmark>.yaml resolves, and its model and methods build."""
    from blip_rl.classification import TrainConfig, build_model
    from blip_rl.classification.cli import build_config
    from blip_rl.core import make_method

    raw = yaml.safe_load(default_config_path(name).read_text())
    assert raw["benchmark"] == name and set(raw["methods"]) == {"blip", "ewc", "ft", "ft-fix"}
    for method in ("blip", "ewc", "ft", "ft-fix"):
        args = parser().parse_args(["classify", "--benchmark", name, "--method", method, "--run-dir", "unused"])
        cfg = build_config(args)
        assert isinstance(cfg.train, TrainConfig)  # typed and validated when read
        model_options = dict(cfg.model)
        # every key is checked; the widths are shrunk, the real AlexNets take seconds to initialize
        model_options.update({"fc_width": 8, "conv_mult": 0.1} if model_options["arch"] == "alexnet" else {"hidden": 8})
        model = build_model(model_options.pop("arch"), input_shape=INPUT_SHAPES[name], head_sizes=[2], **model_options)
        make_method(method, model.trunk, **cfg.method_options)


@pytest.mark.parametrize("method", ["blip", "ewc", "ft-fix"])
def test_classify_digits5_writes_the_run_files(tmp_path, method, capsys):
    pytest.importorskip("sklearn")
    run_dir = tmp_path / "run"
    assert classify(["--benchmark", "digits5", "--method", method, "--run-dir", str(run_dir), *QUICK]) == 0
    for name in ("results.json", "results.csv", "config.yaml", "command.txt"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "checkpoints" / "latest.pt").is_file() and any((run_dir / "tb").iterdir())
    results = json.loads((run_dir / "results.json").read_text())
    assert results["method"] == method and results["tasks_learned"] == 5
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["epochs"] == 2 and cfg["model"]["hidden"] == 16 and cfg["method"] == method
    assert cfg["device"] == "cpu" and cfg["tasks"][0] == "digits-0-1"
    if method == "blip":
        assert cfg["methods"]["blip"]["f_prior"] == cfg["model"]["f_prior"]
    assert (run_dir / "command.txt").read_text().startswith("blip-rl classify --benchmark digits5")
    out = capsys.readouterr().out
    assert "ACC" in out and "BWT" in out and "digits-8-9" in out


def test_f_prior_override_and_existing_run_dir_refused(tmp_path):
    pytest.importorskip("sklearn")
    run_dir = tmp_path / "run"
    classify(["--benchmark", "pdigits", "--method", "blip", "--run-dir", str(run_dir), "--f-prior", "3e-9",
              "--set", "data.num_tasks=2", *QUICK])
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["methods"]["blip"]["f_prior"] == 3e-9 and len(cfg["tasks"]) == 2
    before = (run_dir / "results.json").read_bytes()
    with pytest.raises(ValueError, match="not empty"):
        classify(["--benchmark", "pdigits", "--method", "ft", "--run-dir", str(run_dir), *QUICK])
    assert (run_dir / "results.json").read_bytes() == before  # untouched


def test_missing_data_file_is_named_and_no_run_dir_is_left(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(DatasetNotFoundError, match="train-images-idx3-ubyte") as info:
        classify(["--benchmark", "mnist5", "--method", "blip", "--data-dir", str(tmp_path), "--run-dir", str(run_dir)])
    assert isinstance(info.value, ValueError) and "yann.lecun.com" in str(info.value)
    assert not run_dir.exists()


@pytest.mark.parametrize("argv,match", [
    (["--benchmark", "mnist5", "--method", "blip"], "--data-dir"),
    (["--benchmark", "digits5", "--method", "ft", "--f-prior", "1e-9"], "--f-prior"),
    (["--benchmark", "digits5", "--method", "blip", "--set", "train.lrr=1"], "did you mean train.lr"),
    (["--benchmark", "digits5", "--method", "blip", "--set", "epochs=many"], "epochs must be an integer"),
    (["--benchmark", "digits5", "--method", "blip", "--set", "sed=1"], "did you mean seed"),
    (["--benchmark", "digits5", "--method", "blip", "--set", "methods.blip.prior=1"], "unknown option"),
    (["--benchmark", "digits5", "--method", "blip", "--set", "nonsense"], "KEY=VALUE"),
    (["--benchmark", "digits5", "--method", "blip", "--epochs", "0"], "epochs"),
    (["--benchmark", "digits5", "--method", "blip", "--set", "model.arch=vgg"], "unknown model arch"),
    (["--benchmark", "digits5", "--method", "blip", "--config", "nope.yaml"], "nope.yaml"),
])
def test_bad_input_is_a_value_error_saying_what_to_do(tmp_path, argv, match):
    pytest.importorskip("sklearn")
    with pytest.raises(ValueError, match=match):
        classify([*argv, "--run-dir", str(tmp_path / "run")])


def test_config_of_another_benchmark_is_refused(tmp_path):
    with pytest.raises(ValueError, match="is for benchmark 'pdigits'"):
        classify(["--benchmark", "digits5", "--method", "ft", "--config", str(default_config_path("pdigits")),
                  "--run-dir", str(tmp_path / "r")])


SCRIPT = textwrap.dedent("""
    import argparse, sys
    from blip_rl.classification.cli import register
    p = argparse.ArgumentParser(prog="blip-rl")
    register(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(sys.argv[1:])
    try:
        code = args.func(args, sys.argv[1:])
    except ValueError as exc:
        print(f"blip-rl: error: {exc}", file=sys.stderr)
        code = 2
    eager = {"sklearn", "scipy", "PIL"} & {m.split(".")[0] for m in sys.modules}
    print(f"optional modules imported: {sorted(eager)}", file=sys.stderr)
    sys.exit(code)
""")


def test_subprocess_error_exit_is_clean(tmp_path):
    """A user error is one line on stderr and exit code 2 (no traceback), the run dir untouched."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "notes.txt").write_text("mine")
    cmd = [sys.executable, "-c", SCRIPT, "classify", "--benchmark", "digits5", "--method", "ft",
           "--run-dir", str(tmp_path / "a")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "not empty" in done.stderr and "Traceback" not in done.stderr
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["notes.txt"]
    # scikit-learn, scipy and Pillow are imported only by the loaders that need them
    assert "optional modules imported: []" in done.stderr


def test_classify_resume_after_sigterm_gives_the_results_of_an_uninterrupted_run(tmp_path):
    """SIGTERM in the second task saves progress.pt; --resume takes up its schedule, optimizer and
    RNG states, so the final matrix equals the uninterrupted run's with the same seed."""
    pytest.importorskip("sklearn")
    import os
    import signal
    import subprocess

    from tests._cli import command

    args = ["classify", "--benchmark", "digits5", "--method", "blip", "--epochs", "40", "--seed", "3",
            "--set", "model.hidden=16"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert subprocess.run(command(*args, "--run-dir", whole), capture_output=True, timeout=300).returncode == 0
    proc = subprocess.Popen(command(*args, "--run-dir", cut), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in proc.stdout:
        if line.startswith("after digits-0-1"):
            proc.send_signal(signal.SIGTERM)
            break
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert f"blip-rl classify --resume {cut}" in err and (cut / "checkpoints" / "progress.pt").is_file()
    assert len(json.loads((cut / "results.json").read_text())["raw"]) == 1
    resumed = subprocess.run(command("classify", "--resume", cut), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout and "(1 of 5 tasks done)" in resumed.stdout
    a, b = (json.loads((d / "results.json").read_text()) for d in (whole, cut))
    assert b["raw"] == a["raw"] and b["acc"] == a["acc"] and b["steps"] == a["steps"]
    # --resume with flags of a new run is refused.
    with pytest.raises(ValueError, match="drop --method"):
        classify(["--resume", str(cut), "--method", "ft"])


def test_eval_of_a_classification_checkpoint_reproduces_its_matrix_entry(tmp_path):
    pytest.importorskip("sklearn")
    from tests._cli import blip_rl

    run_dir = tmp_path / "run"
    assert classify(["--benchmark", "digits5", "--method", "ewc", "--run-dir", str(run_dir), *QUICK]) == 0
    raw = json.loads((run_dir / "results.json").read_text())["raw"]
    for k, task in ((0, "digits-0-1"), (3, "digits-6-7")):
        out = json.loads(blip_rl("eval", run_dir / "checkpoints" / "latest.pt", "--task", task, "--json").stdout)
        assert out["accuracy"] == pytest.approx(raw[-1][k]) and out["method"] == "ewc"
    # An earlier checkpoint knows only the tasks learned by then.
    early = blip_rl("eval", run_dir / "checkpoints" / "0_digits-0-1.pt", "--task", "digits-6-7", check=False)
    assert early.returncode == 2 and "was not learned" in early.stderr and "digits-0-1" in early.stderr


def test_a_checkpoint_of_the_earlier_classification_format_still_loads(tmp_path):
    """blip-rl 0.1 wrote classification checkpoints as format blip-rl/classification/1 (flat,
    method "kwargs"): they are upgraded on read."""
    pytest.importorskip("sklearn")
    import torch

    from blip_rl.classification.learner import load_checkpoint

    run_dir = tmp_path / "run"
    assert classify(["--benchmark", "digits5", "--method", "blip", "--run-dir", str(run_dir), *QUICK]) == 0
    new = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)
    m, state = new["method"], new["state"]
    old = {"format": "blip-rl/classification/1", "model_kwargs": state["model_kwargs"],
           "model_state": state["model_state"],
           "method": {"name": m["name"], "kwargs": {"ig_rule": "paper", "strict_radius": False}, "state": m["state"]},
           "tasks": [{"name": t, "n_classes": n} for t, n in zip(new["tasks"], state["n_classes"])],
           "tasks_done": new["tasks_done"], "global_step": new["global_step"], "train": state["train"],
           "seed": state["seed"], "epochs_run": state["epochs_run"], "extra": state["extra"]}
    torch.save(old, tmp_path / "old.pt")
    a, b = load_checkpoint(run_dir / "checkpoints" / "latest.pt"), load_checkpoint(tmp_path / "old.pt")
    assert b.task_names == a.task_names and b.tasks_done == 5 and b.method.name == "blip"
    for (name, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(pa, pb), name
