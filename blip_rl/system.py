"""What machine a command runs on, and what it chooses for it: device, precision, threads.

Nothing here assumes the machine. The CPUs a run lands on differ: some run bf16 natively
(AVX512-BF16 or AMX) and are faster in it, others emulate it and are ~10x slower than fp32, and
some with AVX512-BF16 still run this network slower in bf16 (seen: 0.3-0.6x on a 2-core Xeon).
``--precision auto`` therefore picks bf16 only where it is native *and* calibrated faster:

* CUDA: ``torch.cuda.is_bf16_supported()`` (Ampere and newer).
* CPU: the CPU flags (``avx512_bf16`` / ``amx_bf16``) and the ISA torch dispatches to
  (``ONEDNN_MAX_CPU_ISA``, ``ATEN_CPU_CAPABILITY`` can limit it); where they say yes, the verdict
  of a once-per-machine calibration of the run's own update (:mod:`blip_rl.precision`), stored in
  a per-user cache, so the same command on the same machine always trains the same way.

Threads: a run uses the cores it *has*: CPU affinity and the cgroup's CPU quota (not
``os.cpu_count()``), capped by ``OMP_NUM_THREADS`` and ``SLURM_CPUS_PER_TASK`` where they are
set (how a job scheduler or a user running two jobs side by side says how many cores a job may
use); ``--threads`` wins over all of them. Env stepping and the network take turns within one
process, so both may use all of them without oversubscribing.

Every choice comes with the reason (who decided), written to the run's ``config.yaml``
(``runtime:``), ``system_info.txt``, the first progress line and TensorBoard's text tab.
"""
from __future__ import annotations

from .errors import UserError
from .threads import THREAD_ENV, env_thread_cap

import functools
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = ["PRECISIONS", "THREAD_ENV", "CpuInfo", "Runtime", "cpu_info", "usable_cores", "bf16_support",
           "resolve_device", "resolve_threads", "resolve_runtime", "system_info", "matmul_rates", "benchmark_header"]

#: Values of ``--precision``: ``auto`` picks bf16 only where it is native and calibrated faster.
PRECISIONS = ("auto", "fp32", "bf16")
#: CPU flags that matter for speed, in the order ``blip-rl info`` shows them.
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


@dataclass(frozen=True)
class CpuInfo:
    """The CPU as the operating system and torch see it."""

    model: str
    #: Cores this process may use (affinity and cgroup quota).
    cores: int
    #: Logical CPUs of the machine (``os.cpu_count()``).
    logical: int
    #: The flags of :data:`FLAGS` this CPU has.
    flags: tuple[str, ...]
    #: The ISA torch's own kernels dispatch to (``torch.backends.cpu.get_cpu_capability()``).
    torch_isa: str

    @property
    def bf16_flag(self) -> bool:
        return "avx512_bf16" in self.flags or "amx_bf16" in self.flags


def _read_cpuinfo() -> tuple[str, set[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip():
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model, flags


def _cgroup_cpu_limit() -> int | None:
    """CPUs allowed by a cgroup v2 (``cpu.max``) or v1 (``cfs_quota_us``) quota, if any."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return max(1, int(int(quota) // int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return max(1, quota // period) if quota > 0 else None
    except (OSError, ValueError):
        return None


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    return max(1, min(cores, limit) if limit else cores)


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    model, flags = _read_cpuinfo()
    return CpuInfo(model=model, cores=usable_cores(), logical=os.cpu_count() or 1,
                   flags=tuple(f for f in FLAGS if f in flags),
                   torch_isa=torch.backends.cpu.get_cpu_capability())


# -- speed ------------------------------------------------------------------------------------------
def _time_call(fn, *, min_time: float, max_reps: int) -> float:
    """Seconds per call of ``fn``: one warm-up call, then repeats until ``min_time``."""
    fn()
    reps, start = 0, time.perf_counter()
    while reps < max_reps:
        fn()
        reps += 1
        if time.perf_counter() - start >= min_time:
            break
    return (time.perf_counter() - start) / reps


def matmul_rates(*, size: int = 512, device_type: str = "cpu") -> dict[str, float]:
    """GFLOP/s of a ``size`` x ``size`` matmul in fp32 and in bf16 on this device, now.

    Benchmarks print these next to every ratio, so that a speed figure names what the machine
    could do when it was measured.
    """
    device = torch.device(device_type)
    a = torch.rand(size, size, device=device)
    b = torch.rand(size, size, device=device)
    flops = 2 * size**3
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        x, y = a.to(dtype), b.to(dtype)

        def mm() -> None:
            torch.mm(x, y)
            if device.type == "cuda":
                torch.cuda.synchronize()

        out[f"{name}_gflops"] = flops / _time_call(mm, min_time=0.2, max_reps=200) / 1e9
    return out


# -- choices -------------------------------------------------------------------------------------
def resolve_device(requested: str = "auto") -> torch.device:
    """``auto``: the first CUDA device if there is one, else the CPU.

    :raises ValueError: CUDA asked for where there is none (the message says what to use).
    """
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {requested} was asked for but no CUDA device is available; use --device cpu "
                         "(or auto)")
    return device


def bf16_support(device: torch.device) -> tuple[bool, str]:
    """Whether ``device`` runs bf16 natively, and why (one phrase)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        if torch.cuda.is_bf16_supported():
            return True, f"{name} supports bf16"
        return False, f"{name} has no native bf16"
    info = cpu_info()
    if not info.bf16_flag:
        return False, "this CPU has no AVX512-BF16 or AMX, so bf16 is emulated"
    if info.torch_isa in ("DEFAULT", "AVX2", "NO AVX"):
        return False, f"the CPU has AVX512-BF16 but torch dispatches to {info.torch_isa} (ATEN_CPU_CAPABILITY)"
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in ("SSE41", "AVX", "AVX2", "AVX2_VNNI"):
        return False, f"the CPU has AVX512-BF16 but oneDNN is limited to {os.environ['ONEDNN_MAX_CPU_ISA']}"
    return True, "the CPU has " + " and ".join(f.upper().replace("_", "-") for f in info.flags
                                               if f in ("avx512_bf16", "amx_bf16"))


@dataclass(frozen=True)
class ThreadChoice:
    torch_threads: int
    env_threads: int
    reason: str
    #: who decided: "--threads", "OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK" or "cores"
    source: str = "cores"


def resolve_threads(requested: int = 0, *, n_envs: int = 1, cores: int | None = None,
                    environ: dict[str, str] | None = None) -> ThreadChoice:
    """Threads for torch and for ALE's vector-env workers.

    :param requested: ``--threads`` (0: auto: every usable core, capped by ``OMP_NUM_THREADS``
        and ``SLURM_CPUS_PER_TASK`` where set).
    :param n_envs: the vector env's size (more workers than envs would idle).
    :raises UserError: more threads than usable cores, a negative number, or a thread
        variable that is not a number.
    """
    cores = usable_cores() if cores is None else cores
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 0:
        raise UserError(f"--threads must be an integer from 1 to {cores} (0 or auto: every usable core), "
                        f"got {requested!r}")
    if requested > cores:
        raise UserError(f"--threads {requested} is more than the {cores} cores this process may use; "
                        f"give at most {cores}")
    cap = env_thread_cap(environ)
    plural = "s" if cores != 1 else ""
    if requested:
        threads, source = requested, "--threads"
        reason = f"--threads {requested}" + (f", over {cap[1]}={cap[0]}" if cap and cap[0] != requested else "")
    elif cap and cap[0] < cores:
        threads, source = cap[0], cap[1]
        reason = f"auto: {cap[1]}={cap[0]} (of the {cores} core{plural} this process may use)"
    else:
        threads, source = cores, "cores"
        reason = f"auto: the {cores} core{plural} this process may use" + (f" ({cap[1]}={cap[0]})" if cap else "")
    return ThreadChoice(threads, max(1, min(n_envs, threads)), reason, source)


@dataclass(frozen=True)
class Runtime:
    """What a command chose for this machine, and why; see :func:`resolve_runtime`."""

    device: str
    precision: str
    precision_reason: str
    torch_threads: int
    env_threads: int
    threads_reason: str
    bf16_speedup: float | None = None
    #: warnings for the user, each one line (an explicit bf16 where it is slower; an unusable cache)
    warnings: tuple[str, ...] = ()
    cpu: dict[str, Any] = field(default_factory=dict)
    #: who decided the thread count (see :class:`ThreadChoice`)
    threads_source: str = "cores"
    #: the calibration behind the precision (:class:`blip_rl.precision.Calibration` as a dict), if any
    calibration: dict[str, Any] | None = None

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype of the network (None: plain fp32)."""
        return torch.bfloat16 if self.precision == "bf16" else None

    @property
    def warning(self) -> str | None:
        return "; ".join(self.warnings) or None

    def apply(self) -> None:
        """Set torch's thread count for this process."""
        if torch.get_num_threads() != self.torch_threads:
            torch.set_num_threads(self.torch_threads)

    def summary(self) -> str:
        """One line for the progress output."""
        return (f"{self.device}, {self.precision} ({self.precision_reason}), {self.torch_threads} torch / "
                f"{self.env_threads} env threads ({self.threads_reason})")

    def flags(self) -> list[str]:
        """The command-line flags that make another command choose exactly this (a sweep's runs)."""
        return ["--device", self.device, "--precision", self.precision, "--threads", str(self.torch_threads)]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["warnings"] = list(self.warnings)
        return out


def same_cpu_kind(cpu: dict[str, Any] | None) -> bool:
    """Whether a recorded runtime's ``cpu`` (model, flags, torch ISA; :attr:`Runtime.cpu`) is
    this machine's kind: where it is, a choice made there holds here (a resumed run, a
    continued sweep keep their precision)."""
    info = cpu_info()
    cpu = cpu or {}
    return (cpu.get("model"), cpu.get("flags"), cpu.get("torch_isa")) == (info.model, list(info.flags), info.torch_isa)


def resolve_runtime(*, device: str = "auto", precision: str = "auto", threads: int = 0,
                    n_envs: int = 1, workload=None, recalibrate: bool = False,
                    on_calibrate=None) -> Runtime:
    """Device, precision and threads for one command on this machine (see the module doc).

    :param workload: the update ``auto`` calibrates (:class:`blip_rl.precision.Workload`, e.g.
        :func:`blip_rl.agents.calibration.update_workload`); without one, ``auto`` is fp32.
    :param recalibrate: measure again even where a verdict is stored (``info --calibrate``).
    :param on_calibrate: called with one line before a calibration starts (it takes seconds).
    :raises UserError: a value that cannot be used here; the message says what to give.
    """
    from .precision import resolve_precision

    dev = resolve_device(device)
    threads_choice = resolve_threads(threads, n_envs=n_envs)
    # The calibration runs with the threads the run will use, so it measures what the run will see.
    saved = torch.get_num_threads()
    torch.set_num_threads(threads_choice.torch_threads)
    try:
        choice = resolve_precision(precision, dev, workload=workload, recalibrate=recalibrate,
                                   on_calibrate=on_calibrate)
    finally:
        torch.set_num_threads(saved)
    info = cpu_info()
    return Runtime(device=str(dev), precision=choice.precision, precision_reason=choice.reason,
                   torch_threads=threads_choice.torch_threads, env_threads=threads_choice.env_threads,
                   threads_reason=threads_choice.reason, bf16_speedup=choice.bf16_speedup,
                   warnings=choice.warnings, threads_source=threads_choice.source,
                   calibration=choice.calibration.to_dict() | {"cache": choice.calibration.cache}
                   if choice.calibration else None,
                   cpu={"model": info.model, "cores": info.cores, "flags": list(info.flags),
                        "torch_isa": info.torch_isa})


def benchmark_header(device_type: str = "cpu") -> str:
    """Two lines naming the machine a benchmark ran on: CPU, flags and torch ISA, bf16 native or
    not, and the fp32 / bf16 matmul rates measured now (printed next to every ratio)."""
    info = cpu_info()
    native, why = bf16_support(torch.device(device_type))
    rates = matmul_rates(device_type=device_type)
    flags = " ".join(f.upper().replace("_", "-") for f in info.flags) or "none of " + "/".join(FLAGS)
    return (f"machine: {info.model}, {info.cores} usable cores, {torch.get_num_threads()} torch threads; flags "
            f"{flags}; torch ISA {info.torch_isa}; oneDNN limit {os.environ.get('ONEDNN_MAX_CPU_ISA', 'none')}\n"
            f"bf16 {'native' if native else 'emulated'} ({why}); matmul 512x512 now: fp32 "
            f"{rates['fp32_gflops']:.0f} GFLOP/s, bf16 {rates['bf16_gflops']:.0f} GFLOP/s "
            f"({rates['bf16_gflops'] / rates['fp32_gflops']:.2f}x)")


# -- blip-rl info --------------------------------------------------------------------------------
def _version(module: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return "not installed"


def rom_count() -> int | None:
    """How many game ROMs the installed ale-py ships (None without ale-py)."""
    try:
        from ale_py import roms
    except ImportError:
        return None
    return len(roms.get_all_rom_ids())


def system_info(runtime: Runtime | None = None) -> str:
    """The text of ``blip-rl info`` and of a run's ``system_info.txt``."""
    import sys

    from . import __version__

    info = cpu_info()
    runtime = runtime or resolve_runtime()
    native, why = bf16_support(torch.device("cpu"))
    lines = [
        f"blip-rl {__version__}",
        f"python {sys.version.split()[0]} ({platform.platform()})",
        "packages: " + ", ".join(f"{name} {_version(name)}" for name in
                                 ("torch", "stable-baselines3", "gymnasium", "ale-py", "numpy")),
        f"cpu: {info.model}; {info.cores} usable cores of {info.logical} logical",
        "cpu flags: " + ", ".join(f"{f.upper().replace('_', '-')} {'yes' if f in info.flags else 'no'}"
                                  for f in FLAGS),
        f"torch cpu isa: {info.torch_isa}; oneDNN limit: {os.environ.get('ONEDNN_MAX_CPU_ISA', 'none')}",
        f"cpu bf16: {'native' if native else 'emulated'} ({why})",
    ]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            lines.append(f"cuda:{i}: {props.name}, {props.total_memory / 2**30:.0f} GiB, capability "
                         f"{props.major}.{props.minor}, bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}")
    else:
        lines.append("cuda: not available" + ("" if torch.version.cuda else " (this torch is a CPU build)"))
    lines += [
        f"device: {runtime.device}",
        f"precision: {runtime.precision} ({runtime.precision_reason})",
        f"threads: {runtime.torch_threads} torch, {runtime.env_threads} env ({runtime.threads_reason})",
    ]
    if runtime.calibration:
        from .precision import Calibration

        cal = Calibration.from_dict(runtime.calibration, runtime.calibration.get("cache"))
        lines.append(f"calibration: {cal.describe()}")
    elif runtime.device == "cpu" and native:
        from .precision import cache_path

        lines.append(f"calibration: none stored for this machine and network ({cache_path()})")
    roms = rom_count()
    lines.append(f"ale-py ROMs: {roms if roms is not None else 'ale-py not installed'}")
    return "\n".join(lines) + "\n"
