"""How many cores a job may use, as its environment says: ``OMP_NUM_THREADS``, ``SLURM_CPUS_PER_TASK``.

Torch-free, so that the command line checks these before torch (and its OpenMP runtime, which
prints its own complaint about a bad ``OMP_NUM_THREADS``) is imported.
"""
from __future__ import annotations

import os

from .errors import UserError

__all__ = ["THREAD_ENV", "env_thread_cap"]

#: Environment variables that cap the auto thread count, in the order they are read.
THREAD_ENV = ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK")


def env_thread_cap(environ: "os._Environ[str] | dict[str, str] | None" = None) -> tuple[int, str] | None:
    """The smallest of :data:`THREAD_ENV` that is set, and its name (None: none is set).

    ``OMP_NUM_THREADS`` may be a nested list (``4,2``): its first level counts.

    :raises UserError: a value that is not a whole number of at least 1.
    """
    environ = os.environ if environ is None else environ
    caps = []
    for name in THREAD_ENV:
        raw = environ.get(name, "").strip()
        if not raw:
            continue
        first = raw.split(",")[0].strip()
        if not (first.isascii() and first.isdigit()) or int(first) < 1:
            raise UserError(f"{name}={raw!r} is not a number of threads; set it to the cores this job may use "
                            f"(e.g. {name}=1), or unset it to use every usable core")
        caps.append((int(first), name))
    return min(caps) if caps else None
