"""What a command chooses for the machine it lands on: precision, threads, `blip-rl info`."""
import os
import subprocess
import sys

import pytest
import torch

from blip_rl import system
from blip_rl.precision import resolve_precision
from blip_rl.system import CpuInfo, resolve_runtime, resolve_threads, system_info
from tests._cli import blip_rl

CPU = torch.device("cpu")


def _cpu(monkeypatch, flags, isa="AVX512"):
    info = CpuInfo(model="test cpu", cores=2, logical=2, flags=tuple(flags), torch_isa=isa)
    monkeypatch.setattr(system, "cpu_info", lambda: info)


def test_explicit_fp32_is_kept_and_unknown_is_refused():
    assert resolve_precision("fp32", CPU).precision == "fp32"
    with pytest.raises(ValueError, match="auto, fp32, bf16"):
        resolve_precision("fp16", CPU)


def test_threads_default_to_the_usable_cores_and_refuse_more():
    cores = system.usable_cores()
    assert 1 <= cores <= (os.cpu_count() or 1)
    auto = resolve_threads(0, n_envs=64, environ={})
    assert auto.torch_threads == cores and auto.env_threads == cores and "auto" in auto.reason
    assert resolve_threads(0, n_envs=1).env_threads == 1  # no more env workers than envs
    assert resolve_threads(1, n_envs=8).torch_threads == 1
    with pytest.raises(ValueError, match=f"at most {cores}"):
        resolve_threads(cores + 1)
    with pytest.raises(ValueError, match="--threads"):
        resolve_threads(-1)


def test_runtime_applies_its_threads():
    before = torch.get_num_threads()
    try:
        runtime = resolve_runtime(precision="fp32", threads=1)
        runtime.apply()
        assert torch.get_num_threads() == 1 and runtime.dtype is None
    finally:
        torch.set_num_threads(before)


def test_system_info_names_versions_cpu_and_choices():
    text = system_info(resolve_runtime(precision="fp32"))
    for needle in ("torch ", "stable-baselines3 ", "gymnasium ", "ale-py ", "cpu:", "AVX2", "AVX512-BF16", "AMX-BF16",
                   "cpu bf16:", "precision: fp32", "threads:", "ale-py ROMs: "):
        assert needle in text, needle
    roms = int(text.split("ale-py ROMs: ")[1].split()[0])
    assert roms >= 57


def test_info_command_and_auto_picks_fp32_where_bf16_is_limited_to_avx2():
    """ATEN_CPU_CAPABILITY/ONEDNN_MAX_CPU_ISA make torch behave like a CPU without native bf16
    (on one with it, bf16 matmul then runs ~60x slower than fp32): auto must keep fp32."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    out = subprocess.run([sys.executable, "-m", "blip_rl.cli", "info"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert "calibrating" not in out.stderr  # nothing to calibrate where bf16 is emulated
    assert out.returncode == 0, out.stderr
    assert "precision: fp32 (auto: " in out.stdout and "torch cpu isa: AVX2" in out.stdout
    assert "cpu bf16: emulated" in out.stdout or "bf16" not in system.cpu_info().flags


@pytest.mark.parametrize("flags, message", [
    (["--precision", "fp16"], "precision must be one of auto, fp32, bf16"),
    (["--threads", "0"], "--threads must be at least 1"),
    (["--threads", "4096"], "more than the"),
    (["--n-envs", "0"], "give --n-envs 1 or more"),
    (["--precision", "fp32", "--fast"], "--fast means --precision bf16"),
])
def test_bad_runtime_flags_give_one_line_exit_2_and_write_nothing(tmp_path, flags, message):
    run_dir = tmp_path / "run"
    out = blip_rl("train", "--games", "boxing", "--run-dir", run_dir, *flags, check=False)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in out.stderr
    assert not run_dir.exists()


def test_a_minibatch_count_that_does_not_divide_the_rollout_is_fitted_with_a_note(tmp_path):
    # TINY: 2 envs x 64 steps = 128; 3 minibatches do not divide it, 2 (the nearest divisor) do.
    from tests._cli import TINY

    out = blip_rl("train", "--games", "boxing", "--run-dir", tmp_path / "run", *TINY, "--set", "ppo.n_minibatches=3")
    assert "ppo.n_minibatches 3 does not divide the rollout of 128" in out.stdout
    assert "using 2 minibatches of 64" in out.stdout
    import yaml

    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["ppo"]["n_minibatches"] == 2


def test_a_resumed_auto_run_keeps_its_precision_on_the_same_kind_of_machine(tmp_path):
    import yaml

    from blip_rl.api import resumed_precision as _resumed_precision
    from blip_rl.config import load_config, to_dict

    cfg = load_config(None, {"device": "cpu"})
    info = system.cpu_info()
    here = {"model": info.model, "cores": info.cores, "flags": list(info.flags), "torch_isa": info.torch_isa}
    for cpu, expected in ((here, "bf16"), ({**here, "model": "another CPU"}, "auto"),
                          ({**here, "torch_isa": "AVX2"}, "auto")):
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(
            {**to_dict(cfg), "runtime": {"device": "cpu", "precision": "bf16", "cpu": cpu}}))
        assert _resumed_precision(tmp_path, cfg) == expected
    assert _resumed_precision(tmp_path, load_config(None, {"precision": "fp32"})) == "fp32"  # explicit: as given
