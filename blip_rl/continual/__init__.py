"""The task scheduler: for each task, start -> learn -> Fisher -> consolidate -> evaluate -> checkpoint."""
from .results import Results
from .scheduler import LATEST, PROGRESS, Interrupted, Learner, checkpoint_name, run_sequence

__all__ = ["Learner", "Results", "run_sequence", "checkpoint_name", "Interrupted", "PROGRESS", "LATEST"]
