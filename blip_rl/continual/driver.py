"""What every run driver shares (RL training and classification): a new run dir and the files
it starts with, the state a run dir resumes from (and the note a resume leaves), and the drive
itself (signals, the scheduler, the final tables to the logger's mirror).

The drivers (:func:`blip_rl.api.run_training`, :func:`blip_rl.classification.cli.run_classification`)
build their learner and method and call these, so start, resume and stop behave one way.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .results import Results
from .scheduler import LATEST, PROGRESS, Interrupted, run_sequence
from .signals import StopOnSignal

__all__ = ["start_run_dir", "note_resume", "resume_state", "drive"]


def start_run_dir(run_dir: Path, config: dict[str, Any], command: str, runtime: Any) -> Path:
    """Make the new run dir ``run_dir`` (refused if it holds a run; locked for this process) and
    write the files every run starts with: ``config.yaml`` (``config`` with a ``runtime:``
    section saying what was chosen on this machine and why; read back as information only),
    ``command.txt`` and ``system_info.txt``."""
    import yaml

    from ..config import RUNTIME_KEY
    from ..io import atomic_write_text, make_run_dir
    from ..system import system_info

    run_dir = make_run_dir(Path(run_dir))
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump({**config, RUNTIME_KEY: runtime.to_dict()},
                                                              sort_keys=False))
    atomic_write_text(run_dir / "command.txt", command.rstrip("\n") + "\n")
    atomic_write_text(run_dir / "system_info.txt", system_info(runtime))
    return run_dir


def note_resume(run_dir: Path, runtime: Any, at: str) -> str:
    """Add this machine's info to ``system_info.txt`` under a line saying where the run resumed
    (``at``: ``env step 81920``), since a run may move between machines; returns the info."""
    import time

    from ..io import atomic_write_text
    from ..system import system_info

    info = system_info(runtime)
    path = Path(run_dir) / "system_info.txt"
    before = path.read_text() if path.is_file() else ""
    atomic_write_text(path, before + f"\n# resumed at {at} on {time.strftime('%Y-%m-%d %H:%M:%S')}\n" + info)
    return info


def resume_state(run_dir: Path, read_checkpoint: Callable[[Path], dict[str, Any]]
                 ) -> tuple[dict[str, Any] | None, Results | None]:
    """The newest checkpoint payload of ``run_dir`` (``latest.pt`` or ``progress.pt``, by env
    step, then tasks done; None if there is none) and the results to go on with: the checkpoint's
    own (its learning curve stops where training resumes), unless ``results.json`` holds a row
    evaluated after it."""
    payloads = [read_checkpoint(run_dir / "checkpoints" / name) for name in (LATEST, PROGRESS)
                if (run_dir / "checkpoints" / name).is_file()]
    payload = max(payloads, key=lambda p: (p["global_step"], p["tasks_done"]), default=None)
    results = Results.load(run_dir) if (run_dir / "results.json").is_file() else None
    if payload is not None and payload.get("results"):
        saved = Results.from_dict(payload["results"])
        if results is None or saved.tasks_learned >= results.tasks_learned:
            results = saved
    return payload, results


def drive(learner: Any, method: Any, logger: Any, *, closing: tuple[Any, ...] = (), **sequence: Any) -> Results:
    """:func:`~blip_rl.continual.scheduler.run_sequence` under :class:`StopOnSignal` (SIGINT and
    SIGTERM stop after the current update with a checkpoint: :class:`Interrupted`, with the
    signal), then the final tables to the logger; the logger and ``closing`` (e.g. the learner's
    envs) are closed however it ends. ``sequence``: run_sequence's keyword arguments."""
    try:
        with StopOnSignal() as stop:
            try:
                results = run_sequence(learner, method, logger=logger, should_stop=stop.requested, **sequence)
            except Interrupted as exc:
                exc.signum = stop.signum
                raise
        logger.results(results)
        return results
    finally:
        for thing in closing:
            thing.close()
        logger.close()
