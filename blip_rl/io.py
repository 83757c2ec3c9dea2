"""Atomic file writes: a kill at any moment leaves the previous version of a file whole."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from .errors import UserError

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_json", "atomic_torch_save", "check_new_run_dir",
           "make_run_dir", "remove_stale_temp_files"]


def check_new_run_dir(run_dir: Path) -> Path:
    """Refuse a run dir that exists and is not empty: blip-rl never writes over a run."""
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise UserError(f"run dir {run_dir} already exists and is not empty; choose a new --run-dir "
                        "(blip-rl never overwrites a run)")
    return run_dir


def make_run_dir(run_dir: Path) -> Path:
    """Create a new run dir (:func:`check_new_run_dir`) and check that it can be written."""
    check_new_run_dir(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to run dir {run_dir}: {exc.strerror}; choose a writable --run-dir") from None
    return run_dir


def atomic_write(path: str | Path, write: Callable[[Any], None], *, binary: bool = True) -> None:
    """Write ``path`` via ``write(file)`` into a temporary file beside it, fsync, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp makes the file 0600; give it the permissions a plain open() would (0666 & ~umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text), binary=False)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Delete the temporary files :func:`atomic_write` leaves when a process is killed mid-write
    (``.<name>.<random>.tmp`` beside ``<name>``); the file they were to replace is whole. Returns
    what was removed. Called when a run is resumed."""
    removed = []
    for tmp in run_dir.rglob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink()
            removed.append(tmp)
    return removed
