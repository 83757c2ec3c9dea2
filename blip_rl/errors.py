"""The one error class for mistakes a user can fix.

Every error that bad input can cause (a config key, a flag, a file, a checkpoint, a method that
cannot be imported) is a :class:`UserError` or a subclass. ``blip-rl`` prints it as one line on
stderr and exits with code 2. Anything else is a bug: the command shows its traceback and asks
for a report.
"""
from __future__ import annotations

__all__ = ["UserError", "MissingExtraError", "require"]


class UserError(ValueError):
    """A mistake the user can fix; the message says what is wrong and what to do."""


class MissingExtraError(UserError, ImportError):
    """An optional package is not installed: a user error (exit 2, one line), naming the extra
    of blip-rl that installs it."""


def require(module: str, *, extra: str | None, purpose: str, package: str | None = None):
    """Import the optional ``module`` or raise :class:`MissingExtraError` saying what to install.

    :param extra: the blip-rl extra that installs it (``pip install 'blip-rl[EXTRA]'``); None for
        a package blip-rl requires (an environment that lost it).
    :param purpose: what needs it, e.g. "writing .mp4".
    :param package: its name on PyPI, where it differs from the module's.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        how = (f"pip install 'blip-rl[{extra}]' (or pip install {package or module})" if extra else
               f"pip install {package or module}")
        raise MissingExtraError(f"{purpose} needs {package or module}, which is not installed: {how}") from None
