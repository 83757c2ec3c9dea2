"""Stop a run cleanly on SIGINT/SIGTERM: the scheduler polls :meth:`StopOnSignal.requested`,
finishes the update in progress, writes a resumable checkpoint and raises ``Interrupted``."""
from __future__ import annotations

from typing import Any

__all__ = ["StopOnSignal"]


class StopOnSignal:
    """SIGINT/SIGTERM ask the run to stop after the current update (a second one kills)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "StopOnSignal":
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return self  # only the main thread may handle signals: a run in a thread stops as Python does
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc) -> None:
        import signal

        for sig, old in self._old.items():
            signal.signal(sig, old)

    def requested(self) -> bool:
        return self.signum is not None
