"""The one checkpoint format of every learner, written by the scheduler.

A checkpoint is a ``torch.save``'d dict that loads with ``weights_only=True``:

==================  =========================================================================
``format``          ``"blip-rl/checkpoint"``
``version``         :data:`VERSION`; a newer one is refused with an error naming both
``learner``         which learner wrote it (``"atari-ppo"``, ``"classification"``)
``tasks``           the run's task names, in order; ``tasks_done`` of them are learned
``global_step``     env steps (RL) or samples (classification) so far
``method``          ``{"name", "spec", "options", "state"}``: rebuilt by
                    :func:`blip_rl.core.make_method` (``spec`` may be ``package.module:Class``)
``results``         the score matrix so far (:meth:`Results.to_dict`), or None
``state``           the learner's own: network weights, what rebuilds it, its config
``progress``        what continuing a task needs (optimizer, schedule, RNG states), or None
``drift``           the policy-drift samples (:class:`blip_rl.continual.drift.DriftProbe`), or
                    None (absent in checkpoints of blip-rl 0.2 and earlier)
==================  =========================================================================

Checkpoints of earlier versions are read through an ``upgrade`` function their learner
registers (:func:`read_checkpoint`), so old runs still evaluate and resume.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import torch

from .. import __version__
from ..core import ContinualMethod, method_spec
from ..errors import UserError
from ..io import atomic_torch_save
from .results import Results

__all__ = ["FORMAT", "VERSION", "CheckpointError", "checkpoint_payload", "write_checkpoint", "read_checkpoint",
           "not_learned",
           "method_entry"]

FORMAT = "blip-rl/checkpoint"
VERSION = 2


class CheckpointError(UserError):
    """A checkpoint cannot be used; the message says why and what to do."""


def method_entry(method: ContinualMethod) -> dict[str, Any]:
    """``{"name", "spec", "options", "state"}`` of ``method``, for a checkpoint."""
    return {"name": method.name, **method_spec(method)}


def checkpoint_payload(learner: Any, method: ContinualMethod, *, tasks_done: int, resumable: bool = False,
                       results: Results | None = None, drift: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint of ``learner`` (see the module doc): the envelope around its
    ``checkpoint_state(tasks_done=..., resumable=...)`` (``{"state", "progress"}``)."""
    own = learner.checkpoint_state(tasks_done=tasks_done, resumable=resumable)
    return {
        "format": FORMAT,
        "version": VERSION,
        "blip_rl_version": __version__,
        "learner": learner.kind,
        "tasks": list(learner.task_names),
        "tasks_done": int(tasks_done),
        "global_step": int(learner.global_step),
        "method": method_entry(method),
        "results": results.to_dict() if results is not None else None,
        "state": own["state"],
        "progress": own.get("progress") if resumable else None,
        "drift": drift,
        "saved_at": time.time(),
    }


def write_checkpoint(path: str | Path, learner: Any, method: ContinualMethod, *, tasks_done: int,
                     resumable: bool = False, results: Results | None = None,
                     drift: dict[str, Any] | None = None) -> None:
    """Write :func:`checkpoint_payload` atomically (a kill leaves the previous file whole)."""
    atomic_torch_save(checkpoint_payload(learner, method, tasks_done=tasks_done, resumable=resumable,
                                         results=results, drift=drift), path)


def checkpoint_learner(path: str | Path) -> str | None:
    """Which learner wrote the checkpoint at ``path``: ``"classification"``, the RL learner's name,
    or None where it cannot be read here (the learner's own reader then says why)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # the learner's own reader gives the error
        return None
    if not isinstance(payload, dict):
        return None
    if str(payload.get("format", "")).startswith("blip-rl/classification"):
        return "classification"
    return payload.get("learner")


def not_learned(path: str | Path, name: str, learned: list[str], *, noun: str = "game") -> CheckpointError:
    """The error for a ``noun`` the checkpoint at ``path`` has not learned, saying what it has, or
    (a ``progress.pt`` saved inside the first task) which checkpoint to evaluate instead."""
    path = Path(path)
    if learned:
        return CheckpointError(f"{noun} {name!r} was not learned by {path}; it has learned: {', '.join(learned)}")
    return CheckpointError(f"no {noun} was finished when {path.name} was saved (the run was still learning its "
                           f"first {noun}); evaluate {path.parent / ('<k>_<' + noun + '>.pt')} of a finished {noun} "
                           "(k counts from 0), or resume the run first")


def read_checkpoint(path: str | Path, *, learner: str | None = None, device: str | torch.device = "cpu",
                    upgrade: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] | None = None) -> dict[str, Any]:
    """The payload of a checkpoint, validated (and upgraded from an earlier format).

    :param learner: the learner the caller can use (None: any).
    :param upgrade: earlier formats this caller reads, by their ``format`` string: a function
        from the old payload to this version's.
    :raises CheckpointError: a missing, truncated or corrupt file; another program's file; a
        newer version; a checkpoint of another learner.
    """
    path = Path(path)
    if path.is_dir():
        if (path / "config.yaml").is_file() or (path / "checkpoints").is_dir():
            raise CheckpointError(f"{path} is a run directory: pass {path / 'checkpoints' / 'latest.pt'} (or "
                                  "checkpoints/<k>_<task>.pt, the checkpoint after task k, counted from 0)")
        raise CheckpointError(f"{path} is a directory, not a checkpoint: pass a .pt file such as "
                              "RUN_DIR/checkpoints/latest.pt")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (look in RUN_DIR/checkpoints/)")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/corrupt zips
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}: {exc}); "
                              "use another one from the same run dir") from None
    kind = payload.get("format") if isinstance(payload, dict) else None
    if kind in (upgrade or {}):
        payload = upgrade[kind](payload)
    elif kind != FORMAT:
        what = "Atari" if learner == "atari-ppo" else ("classification" if learner == "classification" else "")
        raise CheckpointError(f"{path} is not a blip-rl {what + ' ' if what else ''}checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {payload.get('version')}; this blip-rl ({__version__}) "
                              f"reads version {VERSION} (and the earlier formats it upgrades); use a blip-rl of "
                              "that version")
    if learner is not None and payload.get("learner") != learner:
        command = "blip-rl classify" if payload.get("learner") == "classification" else "blip-rl train"
        raise CheckpointError(f"{path} is a {payload.get('learner')} checkpoint, not {learner}; it belongs to "
                              f"{command}")
    return payload
