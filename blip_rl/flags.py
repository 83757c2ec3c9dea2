"""What the commands' shared flags mean, in one place (torch-free: the command line reads it before
anything heavy is imported), so that ``--device``, ``--precision``, ``--threads``, ``--seed`` and
``--no-progress`` say the same in every command that takes them."""
from __future__ import annotations

__all__ = ["DEFAULT_SEED", "DEVICE_HELP", "PRECISION_HELP", "THREADS_HELP", "SEED_HELP", "NO_PROGRESS_HELP"]

#: The seed of a run that gives none, the same for every command.
DEFAULT_SEED = 1
DEVICE_HELP = "auto | cpu | cuda | cuda:N"
PRECISION_HELP = "auto (bf16 only where native and calibrated faster on this machine) | fp32 | bf16"
THREADS_HELP = "torch (and env) threads"
SEED_HELP = "seed of the run"
NO_PROGRESS_HELP = "no progress bar"
