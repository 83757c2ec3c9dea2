"""Same seed, same machine, same command: the same numbers, whatever else the machine is doing.

Train (both env backends) and classify, each twice, once with another process keeping a core
busy: results.json (apart from wall times) and every tensor of the checkpoints must be equal.
(A sweep's runs: tests/test_sweep.py.)
"""
import subprocess
import sys

import pytest

from tests._cli import TINY, assert_same_run, blip_rl


@pytest.fixture
def busy_core():
    """Another process spinning on one core for as long as the test runs."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield
    proc.kill()
    proc.wait()


def _twice(tmp_path, request, *args):
    blip_rl(*args, "--run-dir", tmp_path / "a")
    request.getfixturevalue("busy_core")
    blip_rl(*args, "--run-dir", tmp_path / "b")
    return tmp_path / "a", tmp_path / "b"


@pytest.mark.parametrize("backend", ["ale", "sb3"])
def test_train_twice_gives_identical_results_and_weights(tmp_path, request, backend):
    a, b = _twice(tmp_path, request, "train", "--games", "kungfu,boxing", "--method", "blip", "--seed", "3",
                  "--backend", backend, *TINY)
    assert_same_run(a, b, checkpoints=("0_kungfu.pt", "1_boxing.pt", "latest.pt"))


def test_classify_twice_gives_identical_results_and_weights(tmp_path, request):
    a, b = _twice(tmp_path, request, "classify", "--benchmark", "digits5", "--method", "blip", "--epochs", "1",
                  "--seed", "3", "--set", "model.hidden=16")
    assert_same_run(a, b)
