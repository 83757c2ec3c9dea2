"""One writer per run dir: an OS lock that a second writer meets and a kill -9 releases."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from blip_rl.errors import UserError
from blip_rl.io import LOCK_FILE, RunDirLock, check_new_run_dir, make_run_dir
from tests._cli import blip_rl, command
from tests.test_faults import RUN, _check_complete


def test_a_second_lock_on_a_run_dir_is_refused_with_its_holder(tmp_path):
    first = RunDirLock(tmp_path).acquire("blip-rl train --run-dir X")
    with pytest.raises(UserError, match=r"being written by another blip-rl process \(pid \d+ on .*blip-rl train"):
        RunDirLock(tmp_path).acquire()
    first.release()
    RunDirLock(tmp_path).acquire().release()  # released: taken again


def test_a_dir_holding_only_a_lock_file_counts_as_new(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK_FILE).write_text("pid 1 on elsewhere")
    check_new_run_dir(tmp_path / "run")
    make_run_dir(tmp_path / "run")
    (tmp_path / "run" / "config.yaml").write_text("x")
    with pytest.raises(UserError, match="already exists"):
        check_new_run_dir(tmp_path / "run")


def test_a_running_run_refuses_a_second_writer_and_a_kill_releases_it(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(command("train", "--run-dir", run_dir, *RUN), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (run_dir / "checkpoints" / "progress.pt").exists() and time.time() < deadline:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGSTOP)  # paused mid-run, lock held: the check does not race its end
        config = (run_dir / "config.yaml").read_text()
        files = sorted(p.name for p in run_dir.rglob("*"))
        second = blip_rl("train", "--resume", run_dir, "--no-progress", check=False)
        assert second.returncode == 2, second.stdout + second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "being written by another blip-rl process" in lines[0]
        assert f"pid {proc.pid} " in lines[0] and "Traceback" not in second.stderr
        again = blip_rl("train", "--games", "kungfu", "--run-dir", run_dir, check=False)
        assert again.returncode == 2 and "already exists" in again.stderr
        assert (run_dir / "config.yaml").read_text() == config and sorted(p.name for p in run_dir.rglob("*")) == files
        # readers do not wait: the checkpoint of the paused run reads while it holds the lock
        torch.load(run_dir / "checkpoints" / "progress.pt", weights_only=True)
    finally:
        proc.kill()  # kill -9 (of a stopped process too): the OS releases the lock with the process
        proc.wait()
    blip_rl("train", "--resume", run_dir, "--no-progress")
    _check_complete(run_dir)


def test_classify_resume_of_a_running_classify_run_is_refused(tmp_path):
    # The classify run's lock, held here as a running classify would hold it.
    run = tmp_path / "c"
    blip_rl("classify", "--benchmark", "digits5", "--method", "ft", "--epochs", "1", "--set", "model.hidden=16",
            "--run-dir", run)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from blip_rl.io import lock_run_dir; lock_run_dir(Path(sys.argv[1])); "
                               "print('locked', flush=True); time.sleep(60)", str(run)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        again = blip_rl("classify", "--resume", run, check=False)
        assert again.returncode == 2 and "being written by another blip-rl process" in again.stderr
        assert f"pid {holder.pid} " in again.stderr
    finally:
        holder.kill()
        holder.wait()
