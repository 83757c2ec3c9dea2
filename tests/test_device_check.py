"""benchmarks/device_check.py, the one script to run the day a GPU is lent, at a tiny budget on
the CPU: train, kill -9 and resume, eval, export and the speed comparison all run and pass."""
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "device_check.py"


def test_the_device_check_passes_on_the_cpu_at_a_tiny_budget(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--precision", "fp32",
                          "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    summary = out.stdout.strip().splitlines()[-1]
    assert summary.startswith("summary: device cpu, precision ")
    for part in ("train+resume ok", "eval ok", "export ok", "speed ok", "stock SB3 ", "ratio "):
        assert part in summary, summary
    assert "[ok] eval: " in out.stdout and "reproduced" in out.stdout
    assert "[ok] train, kill -9, resume: killed at the first checkpoint" in out.stdout
    assert (tmp_path / "run" / "results.json").is_file() and (tmp_path / "kungfu.zip").is_file()
