"""The interface every continual method implements, and the registry that finds methods by name.

A method protects the parameters of a shared ``trunk`` (the network every task uses; task heads
are the learner's business). Its hooks are named by their place in the loop; the PPO agent and
the classification trainer call the same ones:

``start_sequence(tasks)`` once per run (and on resume), with the names of all its tasks
``start_task(task)``      before the first update of task ``task`` (1-based)
``penalty()``             a loss term added before ``backward()`` (or ``None``)
``before_step()``         between ``backward()`` and the optimizer step: gradient transforms
``after_step()``          after EVERY optimizer step (attached once with :meth:`attach_optimizer`)
``after_update()``        after each update: a PPO rollout's epochs of minibatch steps, or a
                          classification epoch (ReDo counts its interval in these)
``end_task(task, data)``  after the task, with inputs for the Fisher; returns scalar statistics
``retrain_budget(task, budget)``  units to train task ``task`` again after ``end_task``
                          (PackNet's retraining after pruning; 0 for most methods)
``before_eval(task)``     before task ``task`` is evaluated (e.g. apply its mask) ...
``after_eval(task)``      ... and after (undo it)
``state_dict()``          everything that must survive a checkpoint

A method that needs a task head's outputs (behaviour cloning, distillation) calls
:meth:`ContinualMethod.task_outputs`; the learner provides them through :meth:`bind`.

A method is one module: the class, its options as a dataclass (``Options``), and
``@register`` on the class. ``--method NAME`` finds it in :data:`METHODS`;
``--method package.module:Class`` imports a method from outside this project
(:func:`resolve_method`). Checkpoints keep the method's spec and options, so ``eval`` and
``record`` rebuild it as it was trained (:func:`make_method`).
"""
from __future__ import annotations

from ...errors import UserError
from ...values import coerce

import dataclasses
import importlib
import typing
from typing import Any, Callable

import torch
from torch import nn

from ..fisher import FisherData

__all__ = ["ContinualMethod", "TaskOutputs", "MethodError", "METHODS", "register", "resolve_method", "check_options",
           "make_method", "method_spec"]


class MethodError(UserError):
    """A method cannot be found, built or given these options; the message says what to do."""


#: ``outputs(inputs, task)`` -> ``(logits, values)`` of task ``task``'s head (1-based), with
#: gradients; ``values`` is ``None`` where the learner has no value head (classification).
TaskOutputs = Callable[[torch.Tensor, int], "tuple[torch.Tensor, torch.Tensor | None]"]


class ContinualMethod:
    """Base class: a no-op method (plain fine-tuning). Override the hooks you need.

    Subclasses set ``name`` (used in results, checkpoints and TensorBoard), ``needs_fisher``
    (whether :meth:`end_task` wants a :class:`FisherData`) and ``Options``, a dataclass whose
    fields are the keyword arguments of ``__init__`` after ``trunk``.
    """

    name = "base"
    #: Whether :meth:`end_task` needs a :class:`FisherData`.
    needs_fisher = False
    #: The method's options: a dataclass whose fields are ``__init__``'s keyword arguments.
    Options: type | None = None
    #: How the method was asked for (a registry name or ``module:Class``) and with which options;
    #: set by :func:`make_method`, stored in checkpoints.
    spec: str | None = None
    options: dict[str, Any] = {}

    def __init__(self, trunk: nn.Module) -> None:
        self.trunk = trunk
        self.tasks_done = 0
        self._outputs: TaskOutputs | None = None

    @classmethod
    def check_tasks(cls, n_tasks: int, options: dict[str, Any]) -> None:
        """Raise :class:`MethodError` if a sequence of ``n_tasks`` tasks is more than the method
        with ``options`` can hold (checked with the config, before anything is written)."""

    def start_sequence(self, tasks: list[str]) -> None:
        """Called once when a run starts or resumes, with the names of all its tasks in order."""
        self.check_tasks(len(tasks), self.options)

    def bind(self, outputs: TaskOutputs) -> None:
        """Called by the learner before a task starts: how to get a task head's outputs."""
        self._outputs = outputs

    def task_outputs(self, inputs: torch.Tensor, task: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits, values or None)`` of task ``task``'s head (1-based) on ``inputs``, with gradients."""
        if self._outputs is None:
            raise RuntimeError(f"method {self.name!r} needs the task heads' outputs, but the learner did not "
                               "bind() them; call method.bind(outputs) in the learner's begin_task")
        return self._outputs(inputs, task)

    def retrain_budget(self, task: int, budget: int) -> int:
        """Units (env steps, epochs) to train task ``task`` again after :meth:`end_task` changed
        the network (PackNet retrains after pruning); 0: none. ``budget`` is a task's budget."""
        return 0

    def start_task(self, task: int) -> None:
        """Called before the first update of ``task`` (1-based)."""

    def penalty(self) -> torch.Tensor | None:
        """A regularization term to add to the loss, or ``None``."""
        return None

    def before_step(self) -> None:
        """Called after ``backward()`` and before the optimizer step (gradients are final)."""

    def after_step(self) -> None:
        """Called after every optimizer step."""

    def after_update(self) -> None:
        """Called after each update (PPO: one rollout's epochs of minibatch steps; classification:
        one epoch), after its last optimizer step."""

    def end_task(self, task: int, data: FisherData | None = None) -> dict[str, float]:
        """Called once the task is learned; returns statistics to log."""
        self.tasks_done = task
        return {}

    def before_eval(self, task: int) -> None:
        """Called before task ``task`` (1-based) is evaluated."""

    def after_eval(self, task: int) -> None:
        """Called after task ``task`` was evaluated (undo what :meth:`before_eval` did)."""

    def attach_optimizer(self, optimizer: torch.optim.Optimizer):
        """Run :meth:`after_step` after every ``optimizer.step()``; returns the hook handle."""
        return optimizer.register_step_post_hook(lambda _opt, _args, _kwargs: self.after_step())

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tasks_done": self.tasks_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise MethodError(f"the state of method {state.get('name')!r} cannot be loaded into {self.name!r}; use a "
                              f"checkpoint of a {self.name} run, or --method {state.get('name')}")
        self.tasks_done = int(state["tasks_done"])

    def _require(self, data: FisherData | None) -> FisherData:
        if data is None:
            raise ValueError(f"method {self.name!r} needs Fisher data at the end of a task "
                             "(inputs of the task just learned and a logits function)")
        return data


#: Methods by name; filled by ``@register`` in each method's module.
METHODS: dict[str, type[ContinualMethod]] = {}


def register(cls: type[ContinualMethod]) -> type[ContinualMethod]:
    """Class decorator: make ``cls`` available as ``--method cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, ContinualMethod)):
        raise TypeError(f"@register takes a ContinualMethod subclass, got {cls!r}")
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise MethodError(f"a method named {cls.name!r} is registered already ({METHODS[cls.name].__module__})")
    METHODS[cls.name] = cls
    return cls


def resolve_method(spec: str) -> type[ContinualMethod]:
    """The class of ``spec``: a registered name (``blip``) or ``package.module:Class``.

    :raises MethodError: an unknown name, a module that cannot be imported, a missing class, or
        a class that is not a :class:`ContinualMethod`.
    """
    if not isinstance(spec, str) or not spec:
        raise MethodError(f"a method is a name ({', '.join(sorted(METHODS))}) or package.module:Class, got {spec!r}")
    if ":" not in spec:
        if spec not in METHODS:
            raise MethodError(f"unknown method {spec!r}: the method must be one of {', '.join(sorted(METHODS))}, "
                              "or package.module:Class for a method of your own")
        return METHODS[spec]
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MethodError(f"cannot import {module_name!r} for --method {spec} ({exc}); put its folder on "
                          "PYTHONPATH or pip install its package") from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise MethodError(f"module {module_name!r} has no {attr!r} (--method {spec})")
    if not (isinstance(cls, type) and issubclass(cls, ContinualMethod)):
        raise MethodError(f"{spec} is not a continual method: subclass blip_rl.core.ContinualMethod")
    return cls


def _fields(cls: type[ContinualMethod]) -> dict[str, Any] | None:
    """Option name -> type hint, from ``cls.Options`` (None: no Options declared)."""
    if cls.Options is None:
        return None
    hints = typing.get_type_hints(cls.Options)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls.Options)}


def check_options(cls: type[ContinualMethod], options: dict[str, Any], n_tasks: int | None = None) -> dict[str, Any]:
    """``options`` checked against ``cls.Options`` (types coerced, defaults filled in), and, with
    ``n_tasks``, against the length of the sequence (:meth:`ContinualMethod.check_tasks`).

    :raises MethodError: an option the method does not take, a value of the wrong type, or a
        sequence longer than the method can hold.
    """
    fields = _fields(cls)
    if fields is None:
        if options:
            raise MethodError(f"method {cls.name} takes no options (it declares no Options), got {sorted(options)}")
        if n_tasks is not None:
            cls.check_tasks(n_tasks, {})
        return {}
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise MethodError(f"unknown option(s) {', '.join(unknown)} for method {cls.name}; it takes "
                          f"{', '.join(sorted(fields)) or 'no options'}")
    values = {k: coerce(f"option {k} of method {cls.name}", v, fields[k], error=MethodError) for k, v in options.items()}
    try:  # an Options dataclass checks its values in __post_init__ (before any run is started)
        checked = dataclasses.asdict(cls.Options(**values))
    except ValueError as exc:
        raise MethodError(f"method {cls.name}: {exc}") from None
    if n_tasks is not None:
        cls.check_tasks(n_tasks, checked)
    return checked


def make_method(spec: str, trunk: nn.Module, **options: Any) -> ContinualMethod:
    """Build the method ``spec`` (a name or ``package.module:Class``) on ``trunk`` with ``options``.

    :raises MethodError: see :func:`resolve_method` and :func:`check_options`.
    """
    cls = resolve_method(spec)
    checked = check_options(cls, options)
    method = cls(trunk, **checked)
    method.spec, method.options = spec, checked
    return method


def method_spec(method: ContinualMethod) -> dict[str, Any]:
    """What a checkpoint keeps to rebuild ``method``: its spec, options and state.

    A method built by :func:`make_method` knows its options; one built directly reports the
    attributes named like its ``Options`` fields (those it keeps).
    """
    options = dict(method.options)
    if method.spec is None and method.Options is not None:
        options = {f.name: getattr(method, f.name) for f in dataclasses.fields(method.Options)
                   if hasattr(method, f.name)}
    return {"spec": method.spec or method.name, "options": options, "state": method.state_dict()}
