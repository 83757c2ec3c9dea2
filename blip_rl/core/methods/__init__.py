"""Continual methods, one module each; importing this package registers the built-in ones.

:mod:`.base` holds the interface (:class:`ContinualMethod` and its hooks), the registry and
:func:`make_method`. A new method is one more module here (or anywhere importable, given as
``--method package.module:Class``): the class, its ``Options`` dataclass and ``@register``.
"""
from .base import METHODS, ContinualMethod, MethodError, TaskOutputs, check_options, make_method, method_spec, register, resolve_method
from .bc_replay import BCReplay, BCReplayOptions
from .blip import Blip, BlipOptions
from .ewc import EWCOptions, OnlineEWC
from .finetune import FineTune, FineTuneFixed
from .l2 import L2, L2Options
from .l2_init import L2Init, L2InitOptions
from .mas import MAS, MASOptions
from .packnet import PackNet, PackNetOptions
from .redo import ReDo, ReDoOptions
from .shrink_perturb import ShrinkPerturb, ShrinkPerturbOptions
from .si import SI, SIOptions

__all__ = ["ContinualMethod", "MethodError", "METHODS", "register", "resolve_method", "check_options", "make_method",
           "method_spec", "Blip", "BlipOptions", "OnlineEWC", "EWCOptions", "FineTune", "FineTuneFixed", "L2",
           "L2Options", "MAS", "MASOptions", "SI", "SIOptions", "PackNet", "PackNetOptions", "BCReplay", "BCReplayOptions",
           "ShrinkPerturb", "ShrinkPerturbOptions", "L2Init", "L2InitOptions", "ReDo", "ReDoOptions", "TaskOutputs"]
