"""BLIP-quantized convolution and linear layers.

Drop-in replacements for ``nn.Conv2d`` / ``nn.Linear`` whose BLIP state is registered buffers, so
it travels with ``state_dict`` and ``.to(device)``. Per parameter tensor ``p`` ("weight", "bias"):

=================  =========  ======================================================
buffer             dtype      meaning
=================  =========  ======================================================
``{p}_anchor``     float32    c, the quantized value after the last consolidation
``{p}_bits``       uint8      n, leading bits frozen (0..N)
``{p}_fisher``     float32    running Fisher F_{0:t}; starts at the prior F_0
=================  =========  ======================================================

That is 9 bytes per parameter whatever the number of tasks, plus two scalars per layer
(``num_tasks``, ``fisher_prior``). The frozen interval ``[lo, hi]`` (paper eq. 4) is cached in
non-persistent buffers so that clipping after every optimizer step is one ``clamp_`` per tensor;
it is derived from the state above and rebuilt on load.

The forward pass uses theta directly: with N = 20 bits, Q(theta, N) differs from theta by at
most b * 2^-21, and the straight-through estimator's gradient is the identity (paper eq. 3), as
in the authors' code.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch
from torch import nn

from . import bits as B
from .info_gain import bit_growth, check_rule, information_gain, updated_fisher

__all__ = ["CONSOLIDATIONS", "check_consolidation", "BlipLayer", "BlipConv2d", "BlipLinear", "blip_layers", "to_blip", "state_bytes"]

#: What consolidation does to the parameters: ``keep`` them where training put them (the paper's
#: Alg. 1, the default) or ``overwrite`` them with their quantized anchors (the authors' code).
CONSOLIDATIONS = ("keep", "overwrite")


def check_consolidation(consolidation: str) -> str:
    """:raises ValueError: a value other than those of :data:`CONSOLIDATIONS`."""
    if consolidation not in CONSOLIDATIONS:
        raise ValueError(f"consolidation must be one of {', '.join(CONSOLIDATIONS)} (keep: the paper, theta stays; "
                         f"overwrite: the authors' code, theta = Q(theta, n)), got {consolidation!r}")
    return consolidation

DEFAULT_MAX_BITS = 20
#: F_prior on the exact per-sample Fisher (per unit of n_entry): the authors' RL prior 5e-18 on
#: their minibatch-mean Fisher (B ~ 62, so ~3,900x smaller) corresponds to ~2e-14 here. docs/methods.md "F_prior".
DEFAULT_F_PRIOR = 1e-14


def _check_prior(f_prior: float) -> float:
    if not isinstance(f_prior, (int, float)) or isinstance(f_prior, bool):
        raise ValueError(f"f_prior must be a positive number, got {f_prior!r}")
    if not (f_prior > 0 and math.isfinite(f_prior)):
        raise ValueError(
            f"f_prior must be positive and finite (smaller freezes more bits after the first task; "
            f"the default is {DEFAULT_F_PRIOR:g}), got {f_prior!r}"
        )
    return float(f_prior)


class BlipLayer(nn.Module):
    """Mixin holding the BLIP state of a layer's ``weight`` and ``bias``.

    Subclasses call :meth:`_init_blip` at the end of their ``__init__``.
    """

    max_bits: int
    n_entry: int
    strict_radius: bool

    def _init_blip(self, *, n_entry: int, max_bits: int, f_prior: float, init: str) -> None:
        self.max_bits = B.check_max_bits(max_bits)
        self.n_entry = int(n_entry)
        self.strict_radius = False
        f_prior = _check_prior(f_prior)
        if init not in ("orthogonal", "default"):
            raise ValueError(f"init must be 'orthogonal' or 'default', got {init!r}")
        with torch.no_grad():
            if init == "orthogonal":
                # The authors' init: orthogonal with ReLU gain, clamped into the range; biases 0.
                nn.init.orthogonal_(self.weight, gain=nn.init.calculate_gain("relu"))
                if self.bias is not None:
                    self.bias.zero_()
            for name in self.blip_param_names():
                p = getattr(self, name)
                limit = self.bound(name) * (1.0 - 2.0 ** (-self.max_bits))
                p.clamp_(-limit, limit)
        self.register_buffer("num_tasks", torch.zeros((), dtype=torch.int64))
        self.register_buffer("fisher_prior", torch.tensor(f_prior * self.n_entry, dtype=torch.float32))
        for name in self.blip_param_names():
            p = getattr(self, name)
            self.register_buffer(f"{name}_anchor", torch.zeros_like(p, dtype=torch.float32))
            self.register_buffer(f"{name}_bits", torch.zeros_like(p, dtype=torch.uint8))
            self.register_buffer(f"{name}_fisher", torch.full_like(p, f_prior * self.n_entry, dtype=torch.float32))
            self.register_buffer(f"{name}_lo", torch.empty_like(p), persistent=False)
            self.register_buffer(f"{name}_hi", torch.empty_like(p), persistent=False)
        self.refresh_interval()
        self.register_load_state_dict_post_hook(lambda module, _keys: module.refresh_interval())

    # -- introspection -------------------------------------------------------------------------
    def blip_param_names(self) -> tuple[str, ...]:
        """Names of the quantized parameters: ``("weight", "bias")`` or ``("weight",)``."""
        return ("weight",) if self.bias is None else ("weight", "bias")

    def bound(self, name: str) -> float:
        """Quantization range b: 6 / sqrt(n_entry) for weights, 1.0 for biases (authors' code)."""
        return 6.0 / math.sqrt(self.n_entry) if name == "weight" else 1.0

    def frozen_bits(self, name: str = "weight") -> torch.Tensor:
        """Frozen-bit counts n of parameter ``name`` (uint8, same shape as the parameter)."""
        return getattr(self, f"{name}_bits")

    # -- the method ------------------------------------------------------------------------------
    def set_prior(self, f_prior: float) -> None:
        """Set F_0 = f_prior * n_entry; only allowed before the first consolidation."""
        if int(self.num_tasks) > 0:
            raise ValueError("the Fisher prior can only be set before the first task is consolidated")
        value = _check_prior(f_prior) * self.n_entry
        self.fisher_prior.fill_(value)
        for name in self.blip_param_names():
            getattr(self, f"{name}_fisher").fill_(value)

    @torch.no_grad()
    def refresh_interval(self) -> None:
        """Rebuild the cached frozen interval from anchor and bits."""
        # Tensors with no frozen bit (all of them before the first consolidation) only need the
        # range clamp, a scalar one: it skips reading the interval tensors after every step.
        self._any_frozen = {n: bool(getattr(self, f"{n}_bits").any()) for n in self.blip_param_names()}
        for name in self.blip_param_names():
            lo, hi = B.frozen_interval(
                getattr(self, f"{name}_anchor"),
                getattr(self, f"{name}_bits"),
                self.bound(name),
                self.max_bits,
                strict=self.strict_radius,
            )
            getattr(self, f"{name}_lo").copy_(lo)
            getattr(self, f"{name}_hi").copy_(hi)

    def _range_limit(self, name: str, dtype: torch.dtype) -> float:
        """b (1 - 2^-N) rounded inward to ``dtype``: the same endpoint the frozen interval uses
        (:func:`blip_rl.core.bits.frozen_interval`), so that a consolidation, which switches a
        tensor from this scalar clamp to its interval, never moves a parameter by an ulp."""
        cache = self.__dict__.setdefault("_range_limits", {})  # derived, not state: never saved
        key = (name, dtype, self.max_bits)
        if key not in cache:
            exact = self.bound(name) * (1.0 - 2.0 ** (-self.max_bits))
            limit = torch.tensor(exact, dtype=torch.float64).to(dtype)
            if float(limit) > exact:
                limit = torch.nextafter(limit, torch.zeros_like(limit))
            cache[key] = float(limit)
        return cache[key]

    @torch.no_grad()
    def clip_(self) -> None:
        """Clamp every parameter into its frozen interval (paper eq. 4); call after each step."""
        for name in self.blip_param_names():
            p = getattr(self, name)
            if self._any_frozen[name]:
                torch.clamp(p, getattr(self, f"{name}_lo"), getattr(self, f"{name}_hi"), out=p)
            else:
                limit = self._range_limit(name, p.dtype)
                p.clamp_(-limit, limit)

    @torch.no_grad()
    def consolidate_(self, fisher: dict[str, torch.Tensor], *, rule: str = "paper",
                     consolidation: str = "keep") -> dict[str, torch.Tensor]:
        """Freeze the bits the task just learned has made certain (paper eq. 7-9, Alg. 1 l. 9-11).

        Grows the bits by the information gain, updates the running Fisher, sets the anchors to
        the parameters' quantized values with the new bits, c = Q(theta, n) * b, and refreshes
        the interval. The parameters themselves stay where training put them (``keep``, the
        paper's Alg. 1: only c is quantized); they lie in their new interval already, since
        rounding to the n-th bit moves a value by at most half a step of it. ``overwrite`` also
        sets theta = c, as the authors' ``sync_weight`` does: every parameter with no frozen bit
        becomes exactly 0 (Q(u, 0) = 0), a pruning step the paper does not describe.

        :param fisher: F_t per parameter name, e.g. from :func:`blip_rl.core.fisher.fisher_diagonal`.
        :param rule: ``"paper"`` or ``"official"`` (see :mod:`blip_rl.core.info_gain`).
        :param consolidation: ``"keep"`` (the paper) or ``"overwrite"`` (the authors' code).
        :returns: the bits added per parameter name.
        """
        check_rule(rule)
        check_consolidation(consolidation)
        missing = [n for n in self.blip_param_names() if n not in fisher]
        if missing:
            raise ValueError(
                f"consolidation needs the Fisher of {missing} for {type(self).__name__}; "
                "compute it with fisher_diagonal() over inputs of the task just learned"
            )
        task = int(self.num_tasks) + 1
        grown = {}
        for name in self.blip_param_names():
            p = getattr(self, name)
            f_task = fisher[name].to(device=p.device, dtype=torch.float32)
            if f_task.shape != p.shape:
                raise ValueError(f"Fisher of {name} has shape {tuple(f_task.shape)}, expected {tuple(p.shape)}")
            if not torch.isfinite(f_task).all() or (f_task < 0).any():
                raise ValueError(f"Fisher of {name} must be finite and non-negative")
            f_old = getattr(self, f"{name}_fisher")
            n = getattr(self, f"{name}_bits")
            add = bit_growth(information_gain(f_old, f_task, task, rule), n, self.max_bits)
            n.add_(add)
            f_old.copy_(updated_fisher(f_old, f_task, task, rule))
            anchor = B.quantize(p.detach().to(torch.float32), n, self.bound(name))
            getattr(self, f"{name}_anchor").copy_(anchor)
            if consolidation == "overwrite":
                p.copy_(anchor)
            grown[name] = add
        self.num_tasks.add_(1)
        self.refresh_interval()
        self.clip_()
        return grown


class BlipLinear(nn.Linear, BlipLayer):
    """``nn.Linear`` with BLIP state; n_entry = max(in_features, out_features).

    :param max_bits: N, bits per parameter (1..32, paper: 20).
    :param f_prior: F_prior > 0; the running Fisher starts at F_prior * n_entry.
    :param init: ``"orthogonal"`` (authors' code: ReLU gain, biases 0) or ``"default"`` (PyTorch's).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        max_bits: int = DEFAULT_MAX_BITS,
        f_prior: float = DEFAULT_F_PRIOR,
        init: str = "orthogonal",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self._init_blip(n_entry=max(in_features, out_features), max_bits=max_bits, f_prior=f_prior, init=init)


class BlipConv2d(nn.Conv2d, BlipLayer):
    """``nn.Conv2d`` with BLIP state; n_entry = max(C_out, C_in * k_h * k_w).

    Groups other than 1 and padding modes other than ``"zeros"`` are refused, since the exact
    Fisher (:mod:`blip_rl.core.fisher`) does not cover them. Keyword arguments as :class:`BlipLinear`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        *,
        max_bits: int = DEFAULT_MAX_BITS,
        f_prior: float = DEFAULT_F_PRIOR,
        init: str = "orthogonal",
        device=None,
        dtype=None,
    ) -> None:
        if groups != 1 or padding_mode != "zeros":
            raise ValueError("BlipConv2d supports groups=1 and padding_mode='zeros' only")
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode, device=device, dtype=dtype,
        )
        k_h, k_w = self.kernel_size
        self._init_blip(
            n_entry=max(out_channels, in_channels * k_h * k_w), max_bits=max_bits, f_prior=f_prior, init=init
        )


def blip_layers(module: nn.Module) -> Iterator[tuple[str, BlipLayer]]:
    """All BLIP layers inside ``module`` (itself included), with their qualified names."""
    for name, m in module.named_modules():
        if isinstance(m, BlipLayer):
            yield name, m


def to_blip(
    module: nn.Module,
    *,
    max_bits: int = DEFAULT_MAX_BITS,
    f_prior: float = DEFAULT_F_PRIOR,
    keep_weights: bool = True,
) -> nn.Module:
    """Replace every ``nn.Linear`` / ``nn.Conv2d`` inside ``module`` by its BLIP twin, in place.

    Weights are copied (clamped into the quantization range) when ``keep_weights``.

    :raises ValueError: for a module with parameters of a type BLIP cannot quantize (e.g.
        ``BatchNorm``, ``Conv1d``, ``Embedding``): replace it, or quantize only the sub-module
        that holds supported layers.
    """
    def convert(m: nn.Module) -> nn.Module:
        if isinstance(m, BlipLayer):
            return m
        if type(m) is nn.Linear:
            new = BlipLinear(m.in_features, m.out_features, m.bias is not None,
                             max_bits=max_bits, f_prior=f_prior, device=m.weight.device)
        elif type(m) is nn.Conv2d:
            new = BlipConv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                             m.dilation, m.groups, m.bias is not None, m.padding_mode,
                             max_bits=max_bits, f_prior=f_prior, device=m.weight.device)
        else:
            own = list(m.parameters(recurse=False))
            if own:
                raise ValueError(
                    f"BLIP cannot quantize {type(m).__name__} (only nn.Linear and nn.Conv2d): "
                    "replace it, or apply to_blip to the sub-module holding the supported layers"
                )
            for child_name, child in m.named_children():
                setattr(m, child_name, convert(child))
            return m
        if keep_weights:
            with torch.no_grad():
                for name in new.blip_param_names():
                    limit = new.bound(name) * (1.0 - 2.0 ** (-max_bits))
                    getattr(new, name).copy_(getattr(m, name).clamp(-limit, limit))
        return new

    return convert(module)


def state_bytes(module: nn.Module) -> tuple[int, int]:
    """``(bytes of persistent BLIP state, number of quantized parameters)`` inside ``module``."""
    total, count = 0, 0
    for _, layer in blip_layers(module):
        for name in layer.blip_param_names():
            count += getattr(layer, name).numel()
            for suffix in ("anchor", "bits", "fisher"):
                buf = getattr(layer, f"{name}_{suffix}")
                total += buf.numel() * buf.element_size()
    return total, count
