"""What machine a command runs on, and what it chooses for it: device, precision, threads.

Nothing here assumes the machine. The CPUs a run lands on differ: some run bf16 natively
(AVX512-BF16 or AMX) and are faster in it, others emulate it and are ~10x slower than fp32.
``--precision auto`` therefore picks bf16 only where it is native *and* measured faster:

* CUDA: ``torch.cuda.is_bf16_supported()`` (Ampere and newer).
* CPU: the CPU flags (``avx512_bf16`` / ``amx_bf16``) and the ISA torch dispatches to; where
  they say yes, a sub-second probe times the paper trunk's forward + backward in both
  precisions and keeps bf16 only if it is at least :data:`BF16_MIN_GAIN` x faster. The flags
  alone do not decide: oneDNN may be limited below the CPU's ISA (``ONEDNN_MAX_CPU_ISA``,
  ``ATEN_CPU_CAPABILITY``), and some CPUs with AVX512-BF16 still run this network slower in
  bf16 (seen here: 0.6x on a 2-core Xeon with AVX512-BF16 and no AMX).

Threads: a run uses the cores it *has* (CPU affinity and the cgroup's CPU quota, not
``os.cpu_count()``), for torch and for ALE's vector-env workers. Env stepping and the network
take turns within one process, so both may use all of them without oversubscribing.

Every choice comes with the reason, written to the run's ``config.yaml`` (``runtime:``),
``system_info.txt``, the first progress line and TensorBoard's text tab.
"""
from __future__ import annotations

from .errors import UserError

import functools
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = ["PRECISIONS", "CpuInfo", "Runtime", "cpu_info", "usable_cores", "bf16_support", "probe_speed",
           "resolve_device", "resolve_precision", "resolve_threads", "resolve_runtime", "system_info",
           "matmul_rates", "benchmark_header"]

#: Values of ``--precision``: ``auto`` picks bf16 only where it is native and faster.
PRECISIONS = ("auto", "fp32", "bf16")
#: The bf16/fp32 speed ratio below which ``auto`` keeps fp32 on a CPU that claims native bf16.
BF16_MIN_GAIN = 1.2
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


# -- speed probe ---------------------------------------------------------------------------------
def _time_call(fn, *, min_time: float, max_reps: int) -> float:
    """Seconds per call of ``fn``: one warm-up call, then repeats until ``min_time``. A warm-up
    that alone takes longer than ``min_time`` is the measurement (an emulated kernel is slow
    enough that one call tells)."""
    start = time.perf_counter()
    fn()
    warm = time.perf_counter() - start
    if warm >= min_time:
        return warm
    reps, start = 0, time.perf_counter()
    while reps < max_reps:
        fn()
        reps += 1
        if time.perf_counter() - start >= min_time:
            break
    return (time.perf_counter() - start) / reps


def _probe_net(device: torch.device, *, channels_last: bool) -> tuple[torch.nn.Module, torch.Tensor]:
    """The paper trunk's shapes (3 convs, FC 1024) and a batch of 16 frame stacks."""
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(4, 32, 8, 4), nn.ReLU(), nn.Conv2d(32, 64, 4, 2), nn.ReLU(),
                        nn.Conv2d(64, 64, 3, 1), nn.ReLU(), nn.Flatten(), nn.Linear(3136, 1024)).to(device)
    x = torch.rand(16, 4, 84, 84, device=device)
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    return net, x


@functools.lru_cache(maxsize=None)
def probe_speed(device_type: str = "cpu") -> dict[str, float]:
    """Time the paper trunk's forward + backward on a batch of 16, in fp32 and under bf16 autocast.

    Each side uses the memory layout the learner uses in that precision (channels-last for
    fp32, plain for bf16 on a CPU). Three interleaved rounds, the fastest of each side kept, so
    that a busy moment of the machine does not decide. About 0.3 s where bf16 is native; where
    it is emulated, a few seconds (only an explicit ``--precision bf16`` probes there). Cached
    per process.

    :returns: ``{"fp32_s", "bf16_s", "bf16_speedup"}`` (seconds per call; fp32 time / bf16 time).
    """
    device = torch.device(device_type)
    saved_rng = torch.get_rng_state()
    steps = {}
    try:
        for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            net, x = _probe_net(device, channels_last=dtype is None or device.type == "cuda")

            def step(net=net, x=x, dtype=dtype) -> None:
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=dtype is not None):
                    y = net(x).float().square().mean()
                y.backward()
                if device.type == "cuda":
                    torch.cuda.synchronize()

            steps[name] = step
        # Interleaved rounds, the fastest call of each kept: another process slowing the machine
        # for a moment then slows one call, not the verdict (the minimum is the least disturbed).
        times = {name: [] for name in steps}
        for _ in range(3):
            for name, step in steps.items():
                times[name].append(_time_call(step, min_time=0.04, max_reps=8))
    finally:
        torch.set_rng_state(saved_rng)
    fp32, bf16 = min(times["fp32"]), min(times["bf16"])
    return {"fp32_s": fp32, "bf16_s": bf16, "bf16_speedup": fp32 / bf16}


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
class PrecisionChoice:
    precision: str  #: "fp32" or "bf16"
    requested: str  #: what the user asked for
    reason: str
    #: bf16 speed over fp32 measured by :func:`probe_speed`, when it was measured.
    bf16_speedup: float | None = None
    #: A warning for the user (an explicit bf16 where it is emulated), or None.
    warning: str | None = None


def resolve_precision(requested: str, device: torch.device, *, probe: bool = True) -> PrecisionChoice:
    """Turn ``--precision auto|fp32|bf16`` into fp32 or bf16 for ``device``, with the reason.

    :param probe: allow the sub-second speed probe where the flags alone cannot decide.
    :raises ValueError: an unknown value.
    """
    if requested not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    native, why = bf16_support(device)
    if requested == "fp32":
        return PrecisionChoice("fp32", requested, "asked for (--precision fp32)")
    if device.type == "cuda":
        if requested == "bf16" or native:
            warning = None if native else f"bf16 asked for, but {why}: expect it to be slower than fp32"
            return PrecisionChoice("bf16", requested, f"{'asked for' if requested == 'bf16' else 'auto'}: {why}",
                                   warning=warning)
        return PrecisionChoice("fp32", requested, f"auto: {why}")
    speedup = probe_speed("cpu")["bf16_speedup"] if probe and (native or requested == "bf16") else None
    if requested == "bf16":
        warning = None
        if not native or (speedup is not None and speedup < 1.0):
            slower = f" (measured {1 / speedup:.1f}x slower than fp32 here)" if speedup else ""
            warning = (f"--precision bf16 on a machine where {why}{slower}; use --precision auto or fp32 "
                       "for speed")
        return PrecisionChoice("bf16", requested, f"asked for (--precision bf16); {why}", speedup, warning)
    if not native:
        return PrecisionChoice("fp32", requested, f"auto: {why}")
    if speedup is None:
        return PrecisionChoice("bf16", requested, f"auto: {why} (not probed)")
    if speedup >= BF16_MIN_GAIN:
        return PrecisionChoice("bf16", requested, f"auto: {why}; bf16 measured {speedup:.1f}x fp32", speedup)
    return PrecisionChoice("fp32", requested, f"auto: {why}, but bf16 measured only {speedup:.2f}x fp32 here",
                           speedup)


@dataclass(frozen=True)
class ThreadChoice:
    torch_threads: int
    env_threads: int
    reason: str


def resolve_threads(requested: int = 0, *, n_envs: int = 1, cores: int | None = None) -> ThreadChoice:
    """Threads for torch and for ALE's vector-env workers.

    :param requested: ``--threads`` (0: auto, every usable core).
    :param n_envs: the vector env's size (more workers than envs would idle).
    :raises ValueError: more threads than usable cores, or a negative number.
    """
    cores = usable_cores() if cores is None else cores
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 0:
        raise UserError(f"--threads must be an integer from 1 to {cores} (0 or auto: every usable core), "
                         f"got {requested!r}")
    if requested > cores:
        raise UserError(f"--threads {requested} is more than the {cores} cores this process may use; "
                         f"give at most {cores}")
    threads = requested or cores
    reason = (f"--threads {requested}" if requested else
              f"auto: the {cores} core{'s' if cores != 1 else ''} this process may use")
    return ThreadChoice(threads, max(1, min(n_envs, threads)), reason)


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
    warning: str | None = None
    cpu: dict[str, Any] = field(default_factory=dict)

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype of the network (None: plain fp32)."""
        return torch.bfloat16 if self.precision == "bf16" else None

    def apply(self) -> None:
        """Set torch's thread count for this process."""
        if torch.get_num_threads() != self.torch_threads:
            torch.set_num_threads(self.torch_threads)

    def summary(self) -> str:
        """One line for the progress output."""
        return (f"{self.device}, {self.precision} ({self.precision_reason}), {self.torch_threads} torch / "
                f"{self.env_threads} env threads ({self.threads_reason})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_runtime(*, device: str = "auto", precision: str = "auto", threads: int = 0,
                    n_envs: int = 1, probe: bool = True) -> Runtime:
    """Device, precision and threads for one command on this machine (see the module doc).

    :raises ValueError: a value that cannot be used here; the message says what to give.
    """
    dev = resolve_device(device)
    threads_choice = resolve_threads(threads, n_envs=n_envs)
    # The probe runs with the threads the run will use, so it measures what the run will see.
    saved = torch.get_num_threads()
    torch.set_num_threads(threads_choice.torch_threads)
    try:
        choice = resolve_precision(precision, dev, probe=probe)
    finally:
        torch.set_num_threads(saved)
    info = cpu_info()
    return Runtime(device=str(dev), precision=choice.precision, precision_reason=choice.reason,
                   torch_threads=threads_choice.torch_threads, env_threads=threads_choice.env_threads,
                   threads_reason=threads_choice.reason, bf16_speedup=choice.bf16_speedup,
                   warning=choice.warning,
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
    if runtime.bf16_speedup is not None:
        lines.append(f"bf16 probe: {runtime.bf16_speedup:.2f}x the speed of fp32 (paper trunk, forward + backward, "
                     "batch 16)")
    roms = rom_count()
    lines.append(f"ale-py ROMs: {roms if roms is not None else 'ale-py not installed'}")
    return "\n".join(lines) + "\n"
