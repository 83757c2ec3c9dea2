"""The BLIP core: torch + numpy only (no stable-baselines3, no gymnasium).

Quantized layers (:mod:`.quant`), bit arithmetic (:mod:`.bits`), information gain
(:mod:`.info_gain`), exact Fisher (:mod:`.fisher`) and continual methods (:mod:`.methods`).
"""
from .bits import bit_map, bit_statistics, frozen_interval, quantize
from .fisher import FisherData, fisher_diagonal, supported_layers
from .info_gain import IG_RULES, bit_growth, information_gain, updated_fisher
from .methods import (METHODS, Blip, ContinualMethod, FineTune, FineTuneFixed, MethodError, OnlineEWC, check_options,
                      make_method, method_spec, register, resolve_method)
from .quant import (DEFAULT_F_PRIOR, DEFAULT_MAX_BITS, BlipConv2d, BlipLayer, BlipLinear, blip_layers,
                    state_bytes, to_blip)

__all__ = [
    "BlipConv2d", "BlipLinear", "BlipLayer", "blip_layers", "to_blip", "state_bytes",
    "DEFAULT_F_PRIOR", "DEFAULT_MAX_BITS",
    "quantize", "frozen_interval", "bit_statistics", "bit_map",
    "IG_RULES", "information_gain", "bit_growth", "updated_fisher",
    "FisherData", "fisher_diagonal", "supported_layers",
    "ContinualMethod", "Blip", "OnlineEWC", "FineTune", "FineTuneFixed", "METHODS", "make_method",
    "MethodError", "register", "resolve_method", "check_options", "method_spec",
]
