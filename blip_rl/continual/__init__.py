"""The task scheduler: for each task, start -> learn -> Fisher -> consolidate -> evaluate -> checkpoint."""
from .drift import DriftProbe
from .results import TIME_PARTS, Evaluation, Results
from .scheduler import LATEST, PROGRESS, EvalProgress, Interrupted, Learner, checkpoint_name, run_sequence
from .signals import StopOnSignal

__all__ = ["DriftProbe", "Learner", "Results", "Evaluation", "EvalProgress", "TIME_PARTS", "run_sequence", "checkpoint_name",
           "Interrupted", "StopOnSignal", "PROGRESS", "LATEST"]
