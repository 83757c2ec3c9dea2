"""The one error class for mistakes a user can fix.

Every error that bad input can cause (a config key, a flag, a file, a checkpoint, a method that
cannot be imported) is a :class:`UserError` or a subclass. ``blip-rl`` prints it as one line on
stderr and exits with code 2. Anything else is a bug: the command shows its traceback and asks
for a report.
"""
from __future__ import annotations

__all__ = ["UserError"]


class UserError(ValueError):
    """A mistake the user can fix; the message says what is wrong and what to do."""
