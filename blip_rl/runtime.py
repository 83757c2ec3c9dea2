"""The runtime a run or command resolves (device, precision, threads: :func:`resolve`, and for a
checkpoint the one it trained with: :func:`checkpoint_runtime`). The files a new run starts with
are written by :func:`blip_rl.continual.driver.start_run_dir`, for every kind of run.

Between the libraries and the commands: the Python API (:mod:`blip_rl.api`) and the commands
both resolve through here. Calibration notes and warnings go to stderr.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .errors import UserError

__all__ = ["resolve", "run_workload", "checkpoint_runtime"]


def resolve(*, device: str, precision: str, threads: int | None, n_envs: int, workload=None,
                            recalibrate: bool = False):
    """:func:`blip_rl.system.resolve_runtime` for a run or a command: says on stderr when a calibration
    starts (seconds, once per machine) and prints each warning once, on stderr.

    :param workload: the network ``auto`` calibrates (:func:`blip_rl.agents.calibration.update_workload`).
    """
    from .system import resolve_runtime

    def calibrating(line: str) -> None:
        print(f"blip-rl: {line}", file=sys.stderr, flush=True)

    runtime = resolve_runtime(device=device, precision=precision, threads=threads or 0, n_envs=n_envs,
                              workload=workload, recalibrate=recalibrate, on_calibrate=calibrating)
    for warning in runtime.warnings:
        print(f"blip-rl: warning: {warning}", file=sys.stderr)
    return runtime


def run_workload(cfg=None):
    """The update an Atari run with ``cfg`` makes, for ``--precision auto``'s calibration."""
    from .agents.calibration import update_workload

    return update_workload(cfg)


def checkpoint_runtime(path: str | Path, *, device: str | None = None, precision: str | None = None,
                       threads: int | None = None, n_envs: int):
    """The runtime of ``eval``/``record`` for an Atari checkpoint: the device kind, precision and
    threads it was trained with (recorded in it), each unless given (not None), so that
    ``eval`` reproduces the run's own evaluation by default. Recorded bf16 is followed only
    where bf16 is native here; recorded threads only up to the cores (and ``OMP_NUM_THREADS``,
    ``SLURM_CPUS_PER_TASK``) this process may use. A checkpoint that records none (older ones)
    gets ``auto``, which reads the same calibrated verdict on the machine it trained on.

    :raises CheckpointError: the checkpoint cannot be read (before anything is calibrated).
    """
    import dataclasses

    from .agents.checkpoint import read_checkpoint
    from .config import TrainConfig, merge
    from .system import bf16_support, resolve_device, usable_cores
    from .threads import env_thread_cap

    state = read_checkpoint(path)["state"]
    trained = state.get("runtime") or {}
    try:
        cfg = merge(TrainConfig(), {k: v for k, v in (state.get("config") or {}).items()
                                    if k in ("features_dim", "env", "ppo")})
    except UserError:
        cfg = TrainConfig()
    trained_kind = str(trained.get("device", "")).split(":")[0]
    if device is None:
        import torch

        device = "cuda" if trained_kind == "cuda" and torch.cuda.is_available() else "cpu" if trained_kind else "auto"
    here = resolve_device(device)
    same_kind = bool(trained_kind) and here.type == trained_kind
    follow_precision = precision is None and same_kind and trained.get("precision") in ("fp32", "bf16") and (
        trained["precision"] == "fp32" or bf16_support(here)[0])
    if follow_precision:
        precision = trained["precision"]
    cap = env_thread_cap()
    limit = min(usable_cores(), cap[0]) if cap else usable_cores()
    follow_threads = threads is None and same_kind and 1 <= int(trained.get("torch_threads") or 0) <= limit
    if follow_threads:
        threads = int(trained["torch_threads"])
    runtime = resolve(device=device, precision=precision or "auto", threads=threads, n_envs=n_envs,
                                      workload=run_workload(cfg))
    changes = {}
    if follow_precision:
        changes["precision_reason"] = "as the checkpoint trained"
    if follow_threads:
        changes["threads_reason"] = "as the checkpoint trained"
    return dataclasses.replace(runtime, **changes) if changes else runtime
