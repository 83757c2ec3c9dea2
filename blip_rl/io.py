"""Atomic file writes: a kill at any moment leaves the previous version of a file whole."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from .errors import UserError

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_json", "atomic_torch_save", "check_new_run_dir",
           "make_run_dir", "remove_stale_temp_files", "RunDirLock", "lock_run_dir", "LOCK_FILE"]

#: The file a writing run holds an exclusive OS lock on (its text says who holds it).
LOCK_FILE = ".blip-rl.lock"


def _holds_work(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds anything but a lock file (a start that failed before writing)."""
    return any(p.name != LOCK_FILE for p in run_dir.iterdir())


def check_new_run_dir(run_dir: Path) -> Path:
    """Refuse a run dir that exists and is not empty: blip-rl never writes over a run."""
    if run_dir.exists() and (not run_dir.is_dir() or _holds_work(run_dir)):
        raise UserError(f"run dir {run_dir} already exists and is not empty; choose a new --run-dir "
                        "(blip-rl never overwrites a run)")
    return run_dir


def make_run_dir(run_dir: Path) -> Path:
    """Create a new run dir (:func:`check_new_run_dir`) and lock it for this process
    (:func:`lock_run_dir`), so that two commands started with the same ``--run-dir`` at once
    cannot both write it. Opening the lock file also tests that the dir can be written."""
    check_new_run_dir(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock_run_dir(run_dir)
    except OSError as exc:
        raise UserError(f"cannot write to run dir {run_dir}: {exc.strerror}; choose a writable --run-dir") from None
    check_new_run_dir(run_dir)  # another process may have started and finished it meanwhile
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
    import torch

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


class RunDirLock:
    """An exclusive OS file lock (``flock``) on a run dir, held while one process writes it.

    The lock is the kernel's, tied to the open file: a process that ends, however it ends
    (``kill -9`` included), releases it, so there is no stale pid file to clean up. The lock
    file's text (pid, host, start time, command) only serves the message of the process
    that is refused. Readers (``eval``, ``report``, ``record``) never take it: every file is
    written atomically, so they read a running run without waiting.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fh = None

    def acquire(self, command: str = "") -> "RunDirLock":
        """Take the lock, or refuse in one line that names the holder.

        :raises UserError: another process holds it (nothing of its run is touched).
        """
        import fcntl
        import socket
        import sys
        import time

        fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = " ".join(fh.read().split()) or "another process"
            fh.close()
            raise UserError(f"{self.run_dir} is being written by another blip-rl process ({holder}); wait for it "
                            "to finish or stop it first: one process writes a run dir at a time (eval, report and "
                            "record may read it meanwhile)") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                 f"{command or ' '.join(sys.argv)}\n")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the file releases the lock
            self._fh = None

    @property
    def held(self) -> bool:
        return self._fh is not None

    def __enter__(self) -> "RunDirLock":
        return self.acquire() if not self.held else self

    def __exit__(self, *exc: Any) -> None:
        self.release()


#: Locks this process holds, by run dir: held until the process ends (or :meth:`RunDirLock.release`).
_HELD: dict[Path, RunDirLock] = {}


def lock_run_dir(run_dir: Path, command: str = "") -> RunDirLock:
    """Lock ``run_dir`` for this process until it ends (a second call for the same dir is a no-op).

    :raises UserError: another process is writing it.
    """
    key = Path(run_dir).resolve()
    if key not in _HELD:
        _HELD[key] = RunDirLock(run_dir).acquire(command)
    return _HELD[key]
