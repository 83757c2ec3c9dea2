"""A continual method written outside blip-rl runs through every command with no edit to the project.

The method (a plain L2 penalty to the trunk's weights at the end of the previous task) lives in
a throwaway module in a temp folder, found through PYTHONPATH as ``--method my_l2:L2``.
"""
import json
import os
import subprocess

import pytest
import torch

from tests._cli import TINY, command, kill_when_resumable

PLUGIN = '''
from dataclasses import dataclass

import torch

from blip_rl.core import ContinualMethod


@dataclass
class L2Options:
    strength: float = 1.0


class L2(ContinualMethod):
    name = "my-l2"
    Options = L2Options

    def __init__(self, trunk, *, strength=1.0):
        super().__init__(trunk)
        self.strength = strength
        self.anchor = {}
        self.evaluated = 0

    def penalty(self):
        if not self.anchor:
            return None
        return self.strength * sum(((p - self.anchor[n]) ** 2).sum() for n, p in self.trunk.named_parameters())

    def before_eval(self, task):
        self.evaluated += 1

    def end_task(self, task, data=None):
        self.anchor = {n: p.detach().clone() for n, p in self.trunk.named_parameters()}
        self.tasks_done = task
        return {"anchored": float(len(self.anchor))}

    def state_dict(self):
        return {**super().state_dict(), "anchor": self.anchor}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.anchor = dict(state["anchor"])


class NotAMethod:
    pass
'''

#: Two Atari games long enough to be killed in the middle (resumable checkpoint every update).
RUN = [a for a in TINY if a != "128"]
RUN[RUN.index("--steps-per-game") + 1:RUN.index("--steps-per-game") + 1] = ["512"]
RUN += ["--set", "checkpoint_every=128"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plugin")
    (folder / "my_l2.py").write_text(PLUGIN)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}


def run(env, *args, check=True):
    out = subprocess.run(command(*args), capture_output=True, text=True, env=env, timeout=600)
    if check:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


def test_a_method_from_outside_runs_train_kill_resume_eval_and_report(env, tmp_path):
    run_dir = tmp_path / "l2"
    args = ["train", "--games", "kungfu,boxing", "--method", "my_l2:L2", "--set", "methods.my_l2:L2.strength=0.5",
            "--run-dir", run_dir, *RUN]
    proc = subprocess.Popen(command(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    # Kill -9 once the second game has written a resumable checkpoint.
    kill_when_resumable(proc, run_dir, after_step=512)
    run(env, "train", "--resume", run_dir, "--no-progress")

    results = json.loads((run_dir / "results.json").read_text())
    assert results["method"] == "my-l2" and results["steps"] == [512, 1024] and len(results["raw"]) == 2
    payload = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)
    method = payload["method"]
    assert (method["name"], method["spec"], method["options"]) == ("my-l2", "my_l2:L2", {"strength": 0.5})
    assert set(method["state"]["anchor"]) and method["state"]["tasks_done"] == 2
    # The results so far: a task's checkpoint is written before its own row is evaluated.
    assert payload["results"]["method"] == "my-l2" and payload["results"]["raw"] == results["raw"][:1]

    # eval of the earlier game rebuilds the method from the checkpoint and reproduces the matrix.
    out = json.loads(run(env, "eval", run_dir / "checkpoints" / "1_boxing.pt", "--game", "kungfu", "--json").stdout)
    assert out["mean"] == results["raw"][1][0]
    # Without the plugin on the path, eval says what is missing (one line, exit 2).
    bare = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    missing = run(bare, "eval", run_dir / "checkpoints" / "latest.pt", "--game", "kungfu", check=False)
    assert missing.returncode == 2 and "my_l2" in missing.stderr and "PYTHONPATH" in missing.stderr

    report = run(env, "report", run_dir, "--out", tmp_path / "report")
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert "my-l2" in json.dumps(summary), report.stdout


def test_a_method_from_outside_runs_classify(env, tmp_path):
    pytest.importorskip("sklearn")
    run_dir = tmp_path / "digits"
    run(env, "classify", "--benchmark", "digits5", "--method", "my_l2:L2", "--set", "methods.my_l2:L2.strength=2",
        "--epochs", "3", "--set", "model.hidden=16", "--run-dir", run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["method"] == "my-l2" and results["tasks_learned"] == 5
    from blip_rl.classification.learner import load_checkpoint

    import sys

    sys.path.insert(0, env["PYTHONPATH"].split(os.pathsep)[0])
    try:
        loaded = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    finally:
        sys.path.pop(0)
    assert loaded.method.name == "my-l2" and loaded.method.strength == 2.0 and loaded.method.anchor


@pytest.mark.parametrize("method, message", [
    ("no_such_module:L2", "cannot import 'no_such_module'"),
    ("my_l2:Missing", "has no 'Missing'"),
    ("my_l2:NotAMethod", "not a continual method"),
    ("l3", "unknown method 'l3'"),
])
def test_a_method_that_cannot_be_used_is_one_line_exit_2_and_writes_nothing(env, tmp_path, method, message):
    run_dir = tmp_path / "run"
    out = run(env, "train", "--games", "boxing", "--method", method, "--run-dir", run_dir, *TINY, check=False)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and message in out.stderr
    assert not run_dir.exists()


def test_an_option_the_method_does_not_take_is_refused(env, tmp_path):
    out = run(env, "train", "--games", "boxing", "--method", "my_l2:L2", "--set", "methods.my_l2:L2.lam=1",
              "--run-dir", tmp_path / "run", *TINY, check=False)
    assert out.returncode == 2 and "unknown option(s) lam for method my-l2; it takes strength" in out.stderr
    assert not (tmp_path / "run").exists()
