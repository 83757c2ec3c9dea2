"""How stable is ``--precision auto``? Repeated calibrations, idle and with one core busy.

    python benchmarks/precision_stability.py [--repeats 10] [--config quick] [--threads 0]

Runs ``blip-rl info --calibrate`` ``--repeats`` times with the machine idle, then as many times
with another process spinning on one core (as beside a second run of a two-run sweep), each in
a fresh cache of its own, so that every calibration is a first verdict (no hysteresis helps it);
then ``blip-rl info`` as often in one shared cache (what every run after the first sees); then
``info`` with ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` (this CPU made to look like one
without native bf16). Prints each verdict, the ratios' spread, and how many verdicts agree.
Measured, never asserted.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter


def info(*flags: str, env: dict[str, str]) -> tuple[str, float | None]:
    out = subprocess.run([sys.executable, "-m", "blip_rl.cli", "info", *flags], capture_output=True, text=True,
                         env=env, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"blip-rl info {' '.join(flags)} failed: {out.stderr.strip()}")
    line = next(x for x in out.stdout.splitlines() if x.startswith("precision: "))
    ratio = re.search(r"bf16 ([0-9.]+)x fp32", line)
    return line.split()[1], float(ratio.group(1)) if ratio else None


def series(name: str, runs: list[tuple[str, float | None]]) -> None:
    verdicts = Counter(v for v, _ in runs)
    ratios = [r for _, r in runs if r is not None]
    spread = f"; bf16/fp32 {min(ratios):.2f}-{max(ratios):.2f} (median {sorted(ratios)[len(ratios) // 2]:.2f})" \
        if ratios else ""
    print(f"{name:44s} {dict(verdicts)}{spread}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--config", default=None, help="the run config whose network is calibrated (default: default)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: every usable core)")
    args = ap.parse_args()
    from blip_rl.system import benchmark_header

    print(benchmark_header(), flush=True)
    flags = [*(["--config", args.config] if args.config else []), *(["--threads", str(args.threads)] if args.threads
                                                                       else [])]
    base = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")}

    def fresh() -> dict[str, str]:
        return {**base, "BLIP_RL_CACHE_DIR": tempfile.mkdtemp(prefix="blip-rl-stability-")}

    series("first calibrations, idle", [info("--calibrate", *flags, env=fresh()) for _ in range(args.repeats)])
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        series("first calibrations, one core busy",
               [info("--calibrate", *flags, env=fresh()) for _ in range(args.repeats)])
        shared = fresh()
        series("info in one cache (one core busy)", [info(*flags, env=shared) for _ in range(args.repeats)])
    finally:
        busy.kill()
        busy.wait()
    avx2 = {**fresh(), "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    series("info as a CPU without native bf16", [info(*flags, env=avx2) for _ in range(args.repeats)])


if __name__ == "__main__":
    main()
