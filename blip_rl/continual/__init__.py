"""The task scheduler: for each task, start -> learn -> Fisher -> consolidate -> evaluate -> checkpoint."""
from .results import Results
from .scheduler import Learner, run_sequence

__all__ = ["Learner", "Results", "run_sequence"]
