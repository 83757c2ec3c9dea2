"""`--precision auto`: a calibration per machine, stored in a cache, read by every later run."""
import json
import os
import subprocess
import sys

import pytest
import torch

from blip_rl import precision, system
from blip_rl.precision import Workload, calibrate, decide, resolve_precision
from blip_rl.system import CpuInfo, resolve_threads

CPU = torch.device("cpu")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache of this test's own, and a CPU that claims native bf16."""
    monkeypatch.setenv("BLIP_RL_CACHE_DIR", str(tmp_path / "cache"))
    info = CpuInfo(model="test cpu", cores=2, logical=2, flags=("avx2", "avx512f", "avx512_bf16"), torch_isa="AVX512")
    monkeypatch.setattr(system, "cpu_info", lambda: info)
    return tmp_path / "cache" / "precision.json"


def _workload(name="tiny-linear"):
    def make_step(device, bf16):
        net = torch.nn.Linear(64, 64)
        opt = torch.optim.SGD(net.parameters(), lr=0.01)
        x = torch.randn(32, 64)

        def step():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = net(x).float().square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

        return step

    return Workload(name=name, make_step=make_step, description="a test net")


def _measured(monkeypatch, *speedups):
    """Calibrations measure these ratios, one per call; returns the list of calls."""
    calls = []

    def measure(workload, device, **kwargs):
        s = speedups[min(len(calls), len(speedups) - 1)]
        calls.append(s)
        return s, 0.01, 0.01 / s, [s] * 3

    monkeypatch.setattr(precision, "measure", measure)
    return calls


@pytest.mark.parametrize("speedup, previous, expected", [
    (1.5, None, "bf16"), (1.1, None, "bf16"), (1.09, None, "fp32"), (0.6, None, "fp32"),
    # hysteresis: an earlier verdict changes only across the margin
    (1.05, "bf16", "bf16"), (0.99, "bf16", "fp32"), (1.15, "fp32", "fp32"), (1.2, "fp32", "bf16"),
])
def test_decide_with_hysteresis(speedup, previous, expected):
    assert decide(speedup, previous) == expected


def test_auto_calibrates_once_and_every_later_run_reads_the_verdict(cache, monkeypatch):
    calls = _measured(monkeypatch, 1.5, 0.5)
    first = resolve_precision("auto", CPU, workload=_workload())
    assert first.precision == "bf16" and "1.50x" in first.reason and calls == [1.5]
    stored = json.loads(cache.read_text())
    assert stored["format"] == "blip-rl/precision-cache" and len(stored["entries"]) == 1
    for _ in range(5):  # the same machine: no new measurement, the same verdict
        again = resolve_precision("auto", CPU, workload=_workload())
        assert again.precision == "bf16" and again.calibration == first.calibration
    assert calls == [1.5]
    # another network has its own verdict
    assert resolve_precision("auto", CPU, workload=_workload("other")).precision == "fp32" and len(calls) == 2


def test_recalibration_keeps_a_verdict_inside_the_margin(cache, monkeypatch):
    _measured(monkeypatch, 1.3, 1.02, 0.9)
    assert resolve_precision("auto", CPU, workload=_workload()).precision == "bf16"
    kept = resolve_precision("auto", CPU, workload=_workload(), recalibrate=True)
    assert kept.precision == "bf16" and kept.calibration.previous == "bf16" and "1.02x" in kept.reason
    flipped = resolve_precision("auto", CPU, workload=_workload(), recalibrate=True)
    assert flipped.precision == "fp32" and "below" in flipped.reason


RACE = """
import json, sys, time
from pathlib import Path
import torch
from blip_rl import precision, system
from blip_rl.system import CpuInfo
system.cpu_info = lambda: CpuInfo("test cpu", 2, 2, ("avx2", "avx512f", "avx512_bf16"), "AVX512")
def measure(workload, device, **kw):
    with open(sys.argv[1], "a") as f:
        f.write("measured\\n")
    time.sleep(1.0)
    return 1.5, 0.01, 0.01 / 1.5, [1.5]
precision.measure = measure
w = precision.Workload("race-net", lambda d, b: (lambda: None))
print(precision.resolve_precision("auto", torch.device("cpu"), workload=w).precision)
"""


def test_two_runs_starting_together_calibrate_once(cache, tmp_path):
    """The second waits for the first's lock, then reads its verdict instead of measuring."""
    log = tmp_path / "measured.log"
    env = {**os.environ, "BLIP_RL_CACHE_DIR": str(cache.parent)}
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(log)], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert outs == ["bf16"] * 3 and log.read_text().count("measured") == 1


def test_a_sweep_decides_once_from_the_stored_verdict(cache, monkeypatch):
    """The driver's decision, from this machine's stored verdict, becomes every run's flags."""
    import argparse

    from blip_rl import sweep
    from blip_rl.agents.calibration import update_workload
    from blip_rl.config import load_config

    calls = _measured(monkeypatch, 1.6)
    cfg = load_config(None, {"device": "cpu", "features_dim": 32, "env.n_envs": 2, "ppo.n_steps": 16})
    args = argparse.Namespace(cpus_per_run=1, gpus_per_run=0)
    first = sweep.resolve_sweep_runtime(args, cfg)
    assert (first["device"], first["precision"], first["torch_threads"]) == ("cpu", "bf16", 1) and calls == [1.6]
    assert sweep._runtime_flags(first) == ["--device", "cpu", "--precision", "bf16", "--threads", "1"]
    assert sweep.resolve_sweep_runtime(args, cfg) == first and calls == [1.6]  # read, not measured
    [(key, entry)] = json.loads(cache.read_text())["entries"].items()
    assert "|threads=1|" in key and key.endswith(update_workload(cfg).name) and entry["precision"] == "bf16"
    # auto on a machine with a GPU but runs that reserve none: the CPU (Ray hides GPUs from such tasks)
    auto = load_config(None, {"features_dim": 32, "env.n_envs": 2, "ppo.n_steps": 16})
    assert sweep.resolve_sweep_runtime(args, auto)["device"] == "cpu"


def test_the_key_names_threads_torch_and_the_workload(cache):
    key = precision.machine_key(CPU, "net-a")
    assert "threads=" in key and f"torch={torch.__version__}" in key and key.endswith("net-a")
    assert "test cpu" in key and "avx512_bf16" in key


@pytest.mark.parametrize("content", [b"{not json", json.dumps({"something": "else"}).encode(), b"\xff\xfe\x00garbage",
                                     json.dumps({"format": "blip-rl/precision-cache", "version": 99,
                                                 "entries": {}}).encode()])
def test_a_corrupt_or_foreign_cache_is_never_overwritten_and_never_fatal(cache, monkeypatch, content):
    cache.parent.mkdir(parents=True)
    cache.write_bytes(content)
    _measured(monkeypatch, 1.5)
    choice = resolve_precision("auto", CPU, workload=_workload())
    assert choice.precision == "bf16" and choice.calibration.cache is None
    assert len(choice.warnings) == 1 and "deciding in memory" in choice.warnings[0] and str(cache) in choice.warnings[0]
    assert cache.read_bytes() == content


@pytest.mark.parametrize("change", [{"bf16_speedup": "1.5"}, {"ratios": []}, {"precision": "fp16"},
                                    {"measured_at": 3}, {"fp32_step_s": None}])
def test_an_entry_edited_by_hand_is_measured_again_not_a_crash(cache, monkeypatch, change):
    _measured(monkeypatch, 1.5, 0.5)
    resolve_precision("auto", CPU, workload=_workload())
    data = json.loads(cache.read_text())
    [key] = data["entries"]
    data["entries"][key].update(change)
    cache.write_text(json.dumps(data))
    choice = resolve_precision("auto", CPU, workload=_workload())  # calibrates again, replaces the entry
    assert choice.precision == "fp32" and choice.warnings == ()
    assert json.loads(cache.read_text())["entries"][key]["bf16_speedup"] == 0.5


def test_an_unwritable_cache_dir_decides_in_memory_with_one_warning(tmp_path, cache, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("BLIP_RL_CACHE_DIR", str(blocker / "cache"))  # below a file: cannot be made
    _measured(monkeypatch, 0.5)
    choice = resolve_precision("auto", CPU, workload=_workload())
    assert choice.precision == "fp32" and len(choice.warnings) == 1 and "BLIP_RL_CACHE_DIR" in choice.warnings[0]


def test_a_real_calibration_measures_both_sides_and_stores_its_figures(cache):
    result, warnings = calibrate(_workload(), CPU, rounds=3, min_time=0.01)
    assert warnings == [] and result.precision in ("fp32", "bf16") and len(result.ratios) == 3
    assert result.fp32_step_s > 0 and result.bf16_step_s > 0 and result.cache == str(cache)
    assert result.bf16_speedup == sorted(result.ratios)[1] or abs(result.bf16_speedup - sorted(result.ratios)[1]) < 1e-3
    assert torch.get_num_threads() >= 1


def test_the_atari_workload_is_the_learners_network_and_minibatch():
    from blip_rl.agents.calibration import update_workload
    from blip_rl.config import load_config

    cfg = load_config(None, {"features_dim": 32, "env.n_envs": 2, "ppo.n_steps": 16, "ppo.n_minibatches": 2})
    workload = update_workload(cfg)
    assert workload.name == "atari-trunk-f32-s4-b16"
    step = workload.make_step(CPU, False)
    step()  # one update runs


def test_explicit_bf16_where_emulated_warns(monkeypatch):
    info = CpuInfo(model="old cpu", cores=2, logical=2, flags=("avx2",), torch_isa="AVX2")
    monkeypatch.setattr(system, "cpu_info", lambda: info)
    choice = resolve_precision("bf16", CPU, workload=_workload())
    assert choice.precision == "bf16" and "--precision auto" in choice.warnings[0]
    auto = resolve_precision("auto", CPU, workload=_workload())
    assert auto.precision == "fp32" and "emulated" in auto.reason and auto.calibration is None


@pytest.mark.parametrize("environ, threads, source", [
    ({}, 2, "cores"),
    ({"OMP_NUM_THREADS": "1"}, 1, "OMP_NUM_THREADS"),
    ({"SLURM_CPUS_PER_TASK": "1", "OMP_NUM_THREADS": "2"}, 1, "SLURM_CPUS_PER_TASK"),
    ({"OMP_NUM_THREADS": "8"}, 2, "cores"),  # a cap above the usable cores changes nothing
    ({"OMP_NUM_THREADS": "1,1"}, 1, "OMP_NUM_THREADS"),  # a nested list: its first level
])
def test_thread_variables_cap_auto(environ, threads, source):
    choice = resolve_threads(0, n_envs=8, cores=2, environ=environ)
    assert (choice.torch_threads, choice.source) == (threads, source)
    if source != "cores":
        assert source in choice.reason
    explicit = resolve_threads(2, n_envs=8, cores=2, environ=environ)
    assert explicit.torch_threads == 2 and explicit.source == "--threads"


@pytest.mark.parametrize("value", ["0", "abc", "-1", "1.5", "²"])
def test_a_bad_thread_variable_is_a_clear_error(value):
    with pytest.raises(ValueError, match="OMP_NUM_THREADS=.*unset it"):
        resolve_threads(0, cores=2, environ={"OMP_NUM_THREADS": value})


def test_omp_num_threads_reaches_the_run_and_says_so(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "blip_rl.cli", "info", "--precision", "fp32"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "threads: 1 torch, 1 env (auto: OMP_NUM_THREADS=1" in out.stdout or system.usable_cores() == 1
    bad = subprocess.run([sys.executable, "-m", "blip_rl.cli", "info"], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "lots"}, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "OMP_NUM_THREADS='lots'" in bad.stderr


def test_info_shows_the_stored_verdict_and_calibrate_measures_again(tmp_path):
    """On a CPU with native bf16: `info --calibrate` stores a verdict that `info` then shows
    without measuring; elsewhere there is nothing to calibrate."""
    env = {**os.environ, "BLIP_RL_CACHE_DIR": str(tmp_path / "cache")}
    native, _ = system.bf16_support(CPU)
    nothing = subprocess.run([sys.executable, "-m", "blip_rl.cli", "info", "--calibrate", "--precision", "fp32"],
                             capture_output=True, text=True, env=env, timeout=120)
    assert nothing.returncode == 2 and "nothing to calibrate" in nothing.stderr
    cal = subprocess.run([sys.executable, "-m", "blip_rl.cli", "info", "--calibrate", "--config", "quick",
                          "--threads", "1"], capture_output=True, text=True, env=env, timeout=300)
    if not native:
        assert cal.returncode == 2 and "nothing to calibrate" in cal.stderr and "emulated" in cal.stderr
        return
    assert cal.returncode == 0, cal.stderr
    assert "calibrating bf16 against fp32" in cal.stderr and "calibration: " in cal.stdout
    again = subprocess.run([sys.executable, "-m", "blip_rl.cli", "info", "--config", "quick", "--threads", "1"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert "calibrating" not in again.stderr
    line = lambda text: next(x for x in text.splitlines() if x.startswith("precision: "))  # noqa: E731
    assert line(again.stdout) == line(cal.stdout)
