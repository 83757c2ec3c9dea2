"""A sequence longer than a method can hold is refused before anything is written (PackNet)."""
import pytest

from tests._cli import TINY, blip_rl


def test_train_refuses_more_games_than_packnet_capacity(tmp_path):
    run_dir = tmp_path / "run"
    out = blip_rl("train", "--games", "kungfu,boxing,pong", "--method", "packnet", "--set",
                  "methods.packnet.capacity=2", "--run-dir", run_dir, *TINY, check=False)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "packnet holds 2 tasks" in out.stderr and "capacity=3" in out.stderr
    assert not run_dir.exists()


def test_classify_refuses_more_tasks_than_packnet_capacity(tmp_path):
    pytest.importorskip("sklearn")
    run_dir = tmp_path / "run"
    out = blip_rl("classify", "--benchmark", "digits5", "--method", "packnet", "--set", "methods.packnet.capacity=4",
                  "--run-dir", run_dir, check=False)
    assert out.returncode == 2 and "packnet holds 4 tasks (option capacity) but this sequence has 5" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not run_dir.exists()
