"""The one reader of typed values: a config key, a method's option, a model's option.

YAML and ``--set`` hand over strings and loosely typed values (YAML 1.1 reads ``1e-14``, with
no dot, as a string; ``--set x=1`` is the integer 1 where a float is meant); :func:`coerce`
turns each into the type its declaration names, or raises an error that names the key and
what it takes. Every typed reader in blip-rl goes through it: the configs (train and classify,
:mod:`blip_rl.config`), methods' ``Options`` (:func:`blip_rl.core.check_options`) and the
classification models' keyword arguments.
"""
from __future__ import annotations

import types
import typing
from collections import abc
from typing import Any, Callable

__all__ = ["coerce", "describe", "coerce_kwargs"]

_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}


def describe(hint: Any) -> str:
    """What ``hint`` takes, in words (``a number or null``)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(describe(a) for a in typing.get_args(hint)))
    if origin in (list, tuple, abc.Sequence):
        (item, *_) = typing.get_args(hint) or (Any,)
        return f"a list ({describe(item)} each)" if item is not Any else "a list"
    if origin is dict or hint is dict:
        return "a mapping"
    if hint is Any:
        return "any value"
    return _NAMES.get(hint, getattr(hint, "__name__", str(hint)))


def _scalar(value: Any, hint: Any) -> Any:
    """``value`` as ``hint`` (bool, int, float, str), or raise ValueError."""
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                if number.is_integer():
                    return int(number)
    elif hint is float:
        if not isinstance(value, bool):
            try:
                return float(value)
            except (TypeError, ValueError):
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    raise ValueError


def coerce(key: str, value: Any, hint: Any, *, error: Callable[[str], Exception] = ValueError) -> Any:
    """``value`` read as ``hint`` declares; ``error(message)`` is raised where it cannot be.

    Handles ``bool``, ``int``, ``float``, ``str``, ``X | None`` and other unions (the first
    member that takes the value, in the order written), ``list[str]`` / ``list[int]`` (a
    comma-separated string too), ``dict[...]`` (keys as strings) and ``Any``. ``key`` names the
    value in the message: ``ppo.learning_rate must be a number, got 'fast'``.
    """
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(hint)
        if value is None and type(None) in members:
            return None
        for member in members:
            if member is type(None):
                continue
            try:
                return coerce(key, value, member)
            except ValueError:
                continue
    elif origin in (list, tuple, abc.Sequence) or hint is list:
        (item, *_) = typing.get_args(hint) or (Any,)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, (list, tuple)):
            try:
                return [coerce(key, v, item) for v in value]
            except ValueError:
                pass
    elif origin is dict or hint is dict:
        if isinstance(value, dict):
            return {str(k): v for k, v in value.items()}
    else:
        try:
            return _scalar(value, hint)
        except ValueError:
            pass
    raise error(f"{key} must be {describe(hint)}, got {value!r}")


def coerce_kwargs(func: Callable[..., Any], kwargs: dict[str, Any], *, what: str,
                  error: Callable[[str], Exception] = ValueError) -> dict[str, Any]:
    """``kwargs`` for ``func``, each read as ``func``'s annotation declares (unannotated: as given);
    ``what`` names them in an error (``model option``)."""
    import inspect

    hints = typing.get_type_hints(func)
    params = inspect.signature(func).parameters
    return {k: coerce(f"{what} {k}", v, hints.get(k, Any), error=error) if k in params else v
            for k, v in kwargs.items()}
