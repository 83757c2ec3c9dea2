"""``--precision auto``: a per-machine calibration of bf16 against fp32, decided once and remembered.

Why not a quick probe at every start: on a 2-core CPU a sub-second timing flips between
verdicts (seen: 1.53x, 1.48x, 1.85x, 1.61x, then 0.81x on one idle AMD EPYC), so two runs of
one sweep could train in different precisions. Instead:

* The *workload* timed is the update the run makes: the trunk it trains, built by the same
  code, at the learner's minibatch size, forward + backward + optimizer step, in the memory
  layout the learner uses in each precision (:class:`Workload`; ``agents/calibration.py``
  builds the Atari one).
* A calibration warms both sides up, then times :data:`ROUNDS` interleaved rounds and takes
  the median of the per-round ratios (the two sides of a round are adjacent in time, so a busy
  moment of the machine slows both or one round, not the verdict).
* The verdict and its figures are stored in a per-user cache (:func:`cache_dir`), keyed by what
  decides it (:func:`machine_key`: device, CPU model and flags, torch's ISA and the oneDNN limit,
  usable cores, torch threads, torch version, workload). Later ``auto`` runs read it;
  ``blip-rl info --calibrate`` measures again.
* Hysteresis: a first verdict is bf16 at :data:`BF16_MIN_GAIN` x fp32 or more. A calibration
  again changes an earlier verdict only across a margin (bf16 -> fp32 below
  :data:`BF16_KEEP`, fp32 -> bf16 from :data:`BF16_SWITCH`), so a machine near the threshold
  does not oscillate.

A cache that cannot be read (corrupt, foreign) or written is never overwritten and never fatal:
the decision is made in memory for this process, with one warning saying what to do.
"""
from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from .errors import UserError

__all__ = ["BF16_MIN_GAIN", "BF16_KEEP", "BF16_SWITCH", "ROUNDS", "CACHE_ENV", "Workload", "Calibration",
           "PrecisionChoice", "cache_dir", "cache_path", "machine_key", "decide", "calibrate", "read_verdict",
           "resolve_precision"]

#: A first calibration picks bf16 from this bf16/fp32 speed ratio of the update on.
BF16_MIN_GAIN = 1.1
#: A machine calibrated bf16 before stays bf16 unless a new calibration measures less than this.
BF16_KEEP = 1.0
#: A machine calibrated fp32 before becomes bf16 only where a new calibration measures this or more.
BF16_SWITCH = 1.2
#: Interleaved rounds of a calibration (the median ratio is kept).
ROUNDS = 7
#: The environment variable that moves the cache (default ``$XDG_CACHE_HOME/blip-rl`` or ``~/.cache/blip-rl``).
CACHE_ENV = "BLIP_RL_CACHE_DIR"
CACHE_FORMAT = "blip-rl/precision-cache"
CACHE_VERSION = 1
CACHE_FILE = "precision.json"


@dataclass(frozen=True)
class Workload:
    """What a calibration times: one update of the network a run trains.

    :param name: names the network and batch in the cache key, e.g. ``atari-trunk-b256``.
    :param make_step: ``make_step(device, bf16)`` builds the network for that precision (in the
        layout the learner uses for it) and returns a function that makes one update
        (forward, backward, optimizer step) and waits for the device.
    :param description: one phrase for ``blip-rl info``, e.g. "paper trunk + heads, batch 256".
    """

    name: str
    make_step: Callable[[torch.device, bool], Callable[[], None]]
    description: str = ""


@dataclass(frozen=True)
class Calibration:
    """One calibration's verdict and figures, as stored in the cache."""

    precision: str  #: "fp32" or "bf16"
    bf16_speedup: float  #: median over rounds of fp32 time / bf16 time of one update
    fp32_step_s: float  #: fastest fp32 update
    bf16_step_s: float  #: fastest bf16 update
    ratios: list[float]  #: the per-round ratios
    measured_at: str  #: local time, ISO 8601
    workload: str
    key: str
    #: the verdict before this calibration, when there was one (hysteresis)
    previous: str | None = None
    #: where it is stored (None: in memory only)
    cache: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("cache")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], cache: str | None) -> "Calibration":
        """:raises ValueError: a missing field or a value of the wrong type (a cache edited by hand)."""
        if not isinstance(data, dict):
            raise ValueError(f"an entry must be a mapping, got {type(data).__name__}")
        try:
            fields = {k: data[k] for k in ("precision", "bf16_speedup", "fp32_step_s", "bf16_step_s", "ratios",
                                           "measured_at", "workload", "key")}
        except KeyError as exc:
            raise ValueError(f"no {exc.args[0]!r}") from None
        if fields["precision"] not in ("fp32", "bf16"):
            raise ValueError(f"precision {fields['precision']!r}")

        def number(x: Any) -> bool:
            return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x and x > 0

        if not all(number(fields[k]) for k in ("bf16_speedup", "fp32_step_s", "bf16_step_s")):
            raise ValueError("bf16_speedup, fp32_step_s and bf16_step_s must be positive numbers")
        if not isinstance(fields["ratios"], list) or not fields["ratios"] or not all(map(number, fields["ratios"])):
            raise ValueError("ratios must be a non-empty list of positive numbers")
        if not all(isinstance(fields[k], str) for k in ("measured_at", "workload", "key")):
            raise ValueError("measured_at, workload and key must be strings")
        previous = data.get("previous")
        return cls(**fields, previous=previous if previous in ("fp32", "bf16") else None, cache=cache)

    def describe(self) -> str:
        """One line: the verdict, its figures and when it was measured."""
        where = f"cache {self.cache}" if self.cache else "not stored"
        return (f"{self.precision}: bf16 {self.bf16_speedup:.2f}x fp32 (median of {len(self.ratios)} rounds, "
                f"{min(self.ratios):.2f}-{max(self.ratios):.2f}; update fp32 "
                f"{1000 * self.fp32_step_s:.0f} ms, bf16 {1000 * self.bf16_step_s:.0f} ms; {self.workload}), "
                f"measured {self.measured_at}; {where}")


# -- the cache -----------------------------------------------------------------------------------
def cache_dir() -> Path:
    """``$BLIP_RL_CACHE_DIR``, else ``$XDG_CACHE_HOME/blip-rl``, else ``~/.cache/blip-rl``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "blip-rl"


def cache_path() -> Path:
    return cache_dir() / CACHE_FILE


def machine_key(device: torch.device, workload: str) -> str:
    """What decides a verdict, as one readable string (the cache's key)."""
    from .system import cpu_info

    info = cpu_info()
    if device.type == "cuda":
        where = f"cuda:{torch.cuda.get_device_name(device)}"
    else:
        where = "cpu"
    return (f"{where}|{info.model}|flags={','.join(info.flags) or 'none'}|isa={info.torch_isa}|"
            f"onednn={os.environ.get('ONEDNN_MAX_CPU_ISA', 'none')}|cores={info.cores}|"
            f"threads={torch.get_num_threads()}|torch={torch.__version__}|{workload}")


class CacheProblem(Exception):
    """The cache cannot be used; the message says why and what to do."""


def _read_cache(path: Path) -> dict[str, Any]:
    """The cache's entries ({} where there is no file yet).

    :raises CacheProblem: a file that is not a blip-rl precision cache of a known version.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CacheProblem(f"cannot read {path} ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise CacheProblem(f"{path} is not text (corrupt or foreign)") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise CacheProblem(f"{path} is not JSON (corrupt or foreign)") from None
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("entries"), dict):
        raise CacheProblem(f"{path} is not a blip-rl precision cache")
    if data.get("version") != CACHE_VERSION:
        raise CacheProblem(f"{path} is version {data.get('version')!r} of the cache; this blip-rl reads "
                           f"version {CACHE_VERSION}")
    return data["entries"]


@contextlib.contextmanager
def _cache_lock(directory: Path) -> Iterator[None]:
    """An exclusive lock on the cache while one process reads, calibrates and writes it, so that
    two runs starting together calibrate once (the second waits, then reads the verdict) and do
    not time each other. Released by the OS when the process dies."""
    import fcntl

    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "precision.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def read_verdict(key: str) -> tuple[Calibration | None, str | None]:
    """The stored calibration for ``key`` (or None), and a warning when the cache is unusable."""
    path = cache_path()
    try:
        entry = _read_cache(path).get(key)
        return (Calibration.from_dict(entry, str(path)) if entry is not None else None), None
    except CacheProblem as exc:
        return None, _unusable(exc)
    except ValueError as exc:
        return None, _unusable(CacheProblem(f"{path} has an unreadable entry ({exc})"))


def _unusable(exc: Exception) -> str:
    return (f"precision cache unusable: {exc}; deciding in memory for this process. Delete or move the file "
            f"(or set {CACHE_ENV} to a writable directory) so that the verdict is stored")


# -- measuring -----------------------------------------------------------------------------------
def _time_steps(step: Callable[[], None], *, min_time: float) -> float:
    """Seconds per call of ``step``: repeats until ``min_time`` has passed (at least once)."""
    reps, start = 0, time.perf_counter()
    while True:
        step()
        reps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / reps


def measure(workload: Workload, device: torch.device, *, rounds: int = ROUNDS,
            min_time: float = 0.25) -> tuple[float, float, float, list[float]]:
    """Time ``workload`` in fp32 and bf16: warm-up, then ``rounds`` interleaved rounds.

    Torch's global RNG is left as it was (building the networks draws from it).

    :returns: (median ratio fp32/bf16, fastest fp32 step, fastest bf16 step, per-round ratios).
    """
    saved = torch.get_rng_state()
    try:
        steps = {bf16: workload.make_step(device, bf16) for bf16 in (False, True)}
        for step in steps.values():  # warm-up: allocator, oneDNN primitive cache, Adam's state
            step()
            step()
        times: dict[bool, list[float]] = {False: [], True: []}
        ratios = []
        for r in range(rounds):
            order = (False, True) if r % 2 == 0 else (True, False)  # neither side always goes first
            got = {bf16: _time_steps(steps[bf16], min_time=min_time) for bf16 in order}
            for bf16, t in got.items():
                times[bf16].append(t)
            ratios.append(got[False] / got[True])
    finally:
        torch.set_rng_state(saved)
    return statistics.median(ratios), min(times[False]), min(times[True]), ratios


def decide(speedup: float, previous: str | None = None) -> str:
    """The verdict for a measured bf16/fp32 ratio, with hysteresis against an earlier verdict."""
    if previous == "bf16":
        return "bf16" if speedup >= BF16_KEEP else "fp32"
    if previous == "fp32":
        return "bf16" if speedup >= BF16_SWITCH else "fp32"
    return "bf16" if speedup >= BF16_MIN_GAIN else "fp32"


def calibrate(workload: Workload, device: torch.device, *, store: bool = True, rounds: int = ROUNDS,
              min_time: float = 0.25, only_if_missing: bool = False) -> tuple[Calibration, list[str]]:
    """Measure ``workload`` on ``device`` now, decide (with hysteresis against the stored verdict)
    and store the verdict (unless ``store`` is False or the cache is unusable).

    Reading the cache, measuring and writing happen under one lock on the cache, so two processes
    starting together measure once: with ``only_if_missing`` the second one, which waited for the
    lock, finds the first one's verdict and returns it without measuring (and without timing a
    machine the first one is already training on).

    :returns: the calibration and warnings for the user (an unusable cache).
    """
    key = machine_key(device, workload.name)
    warnings: list[str] = []
    path = cache_path()
    try:
        lock = _cache_lock(path.parent)
        lock.__enter__()
    except OSError as exc:
        lock = None
        warnings.append(_unusable(CacheProblem(f"cannot create {path.parent} ({exc.strerror})")))
    try:
        entries: dict[str, Any] | None
        try:
            entries = _read_cache(path)
        except CacheProblem as exc:
            entries = None
            if not warnings:
                warnings.append(_unusable(exc))
        previous = None
        if entries and key in entries:
            try:
                stored = Calibration.from_dict(entries[key], str(path))
            except ValueError:
                stored = None  # an entry edited by hand: measured again and replaced
            if stored is not None and only_if_missing:
                return stored, warnings
            previous = stored.precision if stored is not None else None
        speedup, fp32_s, bf16_s, ratios = measure(workload, device, rounds=rounds, min_time=min_time)
        result = Calibration(precision=decide(speedup, previous), bf16_speedup=speedup, fp32_step_s=fp32_s,
                             bf16_step_s=bf16_s, ratios=[round(r, 4) for r in ratios],
                             measured_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), workload=workload.name, key=key,
                             previous=previous)
        if store and entries is not None and lock is not None:
            from .io import atomic_write_json

            entries[key] = result.to_dict()
            try:
                atomic_write_json(path, {"format": CACHE_FORMAT, "version": CACHE_VERSION, "entries": entries})
                result = Calibration(**{**result.to_dict(), "cache": str(path)})
            except OSError as exc:
                warnings.append(_unusable(CacheProblem(f"cannot write {path} ({exc.strerror})")))
        return result, warnings
    finally:
        if lock is not None:
            lock.__exit__(None, None, None)


def cached_or_calibrate(workload: Workload, device: torch.device, *, recalibrate: bool = False,
                        on_calibrate: Callable[[str], None] | None = None) -> tuple[Calibration, list[str]]:
    """The stored verdict for this machine and workload, calibrating (and storing) where there is
    none yet or ``recalibrate`` is asked for."""
    key = machine_key(device, workload.name)
    if not recalibrate:
        found, _ = read_verdict(key)
        if found is not None:
            return found, []
    if on_calibrate is not None:
        on_calibrate(f"calibrating bf16 against fp32 on this machine ({workload.description or workload.name}); "
                     "once per machine, stored in " + str(cache_path()))
    return calibrate(workload, device, only_if_missing=not recalibrate)


# -- the choice ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PrecisionChoice:
    precision: str  #: "fp32" or "bf16"
    requested: str  #: what the user asked for
    reason: str
    #: the calibration behind an ``auto`` verdict (or the stored one, for an explicit choice)
    calibration: Calibration | None = None
    #: warnings for the user (an explicit bf16 where it is emulated or slower; an unusable cache)
    warnings: tuple[str, ...] = ()

    @property
    def bf16_speedup(self) -> float | None:
        return self.calibration.bf16_speedup if self.calibration else None


def resolve_precision(requested: str, device: torch.device, *, workload: Workload | None = None,
                      recalibrate: bool = False,
                      on_calibrate: Callable[[str], None] | None = None) -> PrecisionChoice:
    """Turn ``--precision auto|fp32|bf16`` into fp32 or bf16 for ``device``, with the reason.

    ``auto`` on a CPU with native bf16 uses the stored calibration of ``workload`` on this
    machine, calibrating once where there is none. Without a workload (a caller that trains no
    network of its own) it is fp32.

    :raises UserError: an unknown value.
    """
    from .system import PRECISIONS, bf16_support

    if requested not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    native, why = bf16_support(device)
    if requested == "fp32":
        return PrecisionChoice("fp32", requested, "asked for (--precision fp32)")
    if device.type == "cuda":
        if requested == "bf16" or native:
            warning = () if native else (f"bf16 asked for, but {why}: expect it to be slower than fp32",)
            return PrecisionChoice("bf16", requested, f"{'asked for' if requested == 'bf16' else 'auto'}: {why}",
                                   warnings=warning)
        return PrecisionChoice("fp32", requested, f"auto: {why}")
    if requested == "bf16":
        stored = read_verdict(machine_key(device, workload.name))[0] if workload is not None and native else None
        warnings: tuple[str, ...] = ()
        if not native or (stored is not None and stored.bf16_speedup < 1.0):
            slower = f" (calibrated {1 / stored.bf16_speedup:.1f}x slower than fp32 here)" if stored else ""
            warnings = (f"--precision bf16 on a machine where {why}{slower}; use --precision auto or fp32 for speed",)
        return PrecisionChoice("bf16", requested, f"asked for (--precision bf16); {why}", stored, warnings)
    if not native:
        return PrecisionChoice("fp32", requested, f"auto: {why}")
    if workload is None:
        return PrecisionChoice("fp32", requested, f"auto: {why}, no network to calibrate")
    found, warns = cached_or_calibrate(workload, device, recalibrate=recalibrate, on_calibrate=on_calibrate)
    rule = (f", below the {_needed(found.previous):.1f}x bf16 needs" if found.precision == "fp32" else
            f", at least the {_needed(found.previous):.1f}x bf16 needs")
    verdict = (f"auto: {why}; calibrated {found.measured_at[:16].replace('T', ' ')}: bf16 "
               f"{found.bf16_speedup:.2f}x fp32{rule}")
    return PrecisionChoice(found.precision, requested, verdict, found, tuple(warns))


def _needed(previous: str | None) -> float:
    """The ratio bf16 needs, given the verdict before the last calibration."""
    return {"fp32": BF16_SWITCH, "bf16": BF16_KEEP}.get(previous or "", BF16_MIN_GAIN)
