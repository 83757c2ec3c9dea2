"""The paper's classification networks: a BLIP trunk shared by all tasks, one plain head per task.

- :class:`MLP` for MNIST-sized inputs: the authors' ``q_mlp.py`` is ONE hidden BLIP linear layer of
  1,200 units (+ ReLU) followed by the task heads, i.e. the paper's "two layer perceptron with 1,200
  hidden units" counts the head as the second layer. ``hidden_layers`` adds more.
- :class:`AlexNet` for 32x32 and 84x84 images, as the authors' ``q_alexnet.py``: three BLIP convs
  (kernels size//8, size//10, 2; 64, 128, 256 channels times ``conv_mult``), each ReLU -> dropout ->
  2x2 max-pool, then two BLIP linear layers of ``fc_width`` units with ReLU -> dropout.
  **No batch norm**: the authors' net has none, and the exact per-sample Fisher
  (:mod:`blip_rl.core.fisher`) needs samples that do not interact. Dropout is per sample, and the
  Fisher is taken in eval mode (as the authors' ``estimate_fisher`` does), so it is exact.

The trunk is ``model.trunk`` (what a continual method protects); ``model.heads[k]`` is task k's
plain ``nn.Linear``; ``model(x, k)`` gives task k's logits. ``model.constructor_kwargs`` rebuilds the
model with :func:`build_model` (checkpoints store it).
"""
from __future__ import annotations

from ..errors import UserError

import math
from typing import Any, Sequence

import torch
from torch import nn

from ..core import DEFAULT_F_PRIOR, DEFAULT_MAX_BITS, BlipConv2d, BlipLinear, blip_layers

__all__ = ["MLP", "AlexNet", "ARCHS", "build_model", "INITS"]

#: Weight initializations of the trunk: the authors' classification code draws N(0, 1/fan_in)
#: (``"normal"``); ``"orthogonal"`` is their RL init (the core's default).
INITS = ("normal", "orthogonal")


def _init_trunk(trunk: nn.Module, init: str) -> None:
    """Initialize BLIP layers as the authors' ``quant_layer.py``: weights N(0, 1/fan_in) clamped
    into the quantization range, biases 0 (``"normal"``); ``"orthogonal"`` keeps the core's init."""
    if init not in INITS:
        raise UserError(f"init must be one of {INITS}, got {init!r}")
    if init == "orthogonal":
        return
    with torch.no_grad():
        for _, layer in blip_layers(trunk):
            fan_in = layer.weight[0].numel()
            layer.weight.normal_(0.0, math.sqrt(1.0 / fan_in))
            for name in layer.blip_param_names():
                limit = layer.bound(name) * (1.0 - 2.0 ** (-layer.max_bits))
                getattr(layer, name).clamp_(-limit, limit)
            if layer.bias is not None:
                layer.bias.zero_()


def _core_init(init: str) -> str:
    """The core layers' own init: skip their orthogonal init (a QR per layer, seconds for the
    2048-wide linears) when :func:`_init_trunk` draws the weights anyway."""
    if init not in INITS:
        raise UserError(f"init must be one of {INITS}, got {init!r}")
    return "orthogonal" if init == "orthogonal" else "default"


def _check_heads(head_sizes: Sequence[int]) -> list[int]:
    sizes = [int(n) for n in head_sizes]
    if not sizes or any(n < 1 for n in sizes):
        raise UserError(f"head_sizes must list a positive class count per task, got {list(head_sizes)}")
    return sizes


class _MultiHead(nn.Module):
    """A trunk and one linear head per task; ``forward(x, task)`` -> task's logits."""

    trunk: nn.Module
    heads: nn.ModuleList
    constructor_kwargs: dict[str, Any]

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        return self.heads[task](self.trunk(x))

    @property
    def num_tasks(self) -> int:
        return len(self.heads)


class MLP(_MultiHead):
    """BLIP MLP trunk (flatten -> [BlipLinear -> ReLU] x ``hidden_layers``) and task heads.

    :param input_shape: shape of one input, e.g. ``(1, 28, 28)``.
    :param head_sizes: classes per task, one head each.
    :param hidden: hidden units per layer (paper: 1,200; a small width suits 8x8 digits).
    :param hidden_layers: BLIP hidden layers (authors' code: 1).
    :param max_bits: N, bits per parameter (paper: 20).
    :param f_prior: F_prior on the true per-sample Fisher (see BLIP_METHOD.md).
    :param init: ``"normal"`` (authors' classification code) or ``"orthogonal"``.
    """

    def __init__(
        self,
        *,
        input_shape: Sequence[int],
        head_sizes: Sequence[int],
        hidden: int = 1200,
        hidden_layers: int = 1,
        max_bits: int = DEFAULT_MAX_BITS,
        f_prior: float = DEFAULT_F_PRIOR,
        init: str = "normal",
    ) -> None:
        super().__init__()
        heads = _check_heads(head_sizes)
        if hidden < 1 or hidden_layers < 1:
            raise UserError(f"hidden and hidden_layers must be >= 1, got {hidden} and {hidden_layers}")
        n_in = int(math.prod(input_shape))
        layers: list[nn.Module] = [nn.Flatten()]
        for i in range(hidden_layers):
            layers += [BlipLinear(n_in if i == 0 else hidden, hidden, max_bits=max_bits, f_prior=f_prior,
                                  init=_core_init(init)), nn.ReLU()]
        self.trunk = nn.Sequential(*layers)
        _init_trunk(self.trunk, init)
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in heads)
        self.constructor_kwargs = {
            "arch": "mlp", "input_shape": [int(s) for s in input_shape], "head_sizes": heads, "hidden": int(hidden),
            "hidden_layers": int(hidden_layers), "max_bits": int(max_bits), "f_prior": float(f_prior), "init": init,
        }


def _conv_out(size: int, kernel: int) -> int:
    return size - kernel + 1


class AlexNet(_MultiHead):
    """The authors' AlexNet-like BLIP net (``q_alexnet.py``) and task heads.

    :param input_shape: ``(C, H, W)`` with H = W >= 20 (kernels H//8, H//10, 2).
    :param head_sizes: classes per task.
    :param conv_mult: channel multiplier of the convs (64, 128, 256 x mult; authors: 2 for
        CIFAR-10/100, 0.8 for the mixture).
    :param fc_width: units of the two BLIP linear layers (authors: 2048; 2048 x 0.8 for the mixture).
    :param dropout: dropout after the first two convs and after the third conv and the linears
        (authors: 0.2, 0.2).
    :param max_bits: N, bits per parameter.
    :param f_prior: F_prior on the true per-sample Fisher.
    :param init: ``"normal"`` or ``"orthogonal"``.
    """

    def __init__(
        self,
        *,
        input_shape: Sequence[int],
        head_sizes: Sequence[int],
        conv_mult: float = 1.0,
        fc_width: int = 2048,
        dropout: Sequence[float] = (0.2, 0.2),
        max_bits: int = DEFAULT_MAX_BITS,
        f_prior: float = DEFAULT_F_PRIOR,
        init: str = "normal",
    ) -> None:
        super().__init__()
        heads = _check_heads(head_sizes)
        if len(input_shape) != 3 or input_shape[1] != input_shape[2] or input_shape[1] < 20:
            raise UserError(f"AlexNet needs square (C, H, W) inputs with H >= 20, got {tuple(input_shape)}; "
                             "use arch 'mlp' for small inputs")
        if conv_mult <= 0 or fc_width < 1:
            raise UserError(f"conv_mult must be > 0 and fc_width >= 1, got {conv_mult} and {fc_width}")
        d1, d2 = (float(p) for p in dropout)
        channels, size = int(input_shape[0]), int(input_shape[1])
        widths = [round(64 * conv_mult), round(128 * conv_mult), round(256 * conv_mult)]
        kernels = [size // 8, size // 10, 2]
        blip = {"max_bits": max_bits, "f_prior": f_prior, "init": _core_init(init)}
        layers: list[nn.Module] = []
        s, c_in = size, channels
        for width, k, p in zip(widths, kernels, (d1, d1, d2)):
            layers += [BlipConv2d(c_in, width, k, **blip), nn.ReLU(), nn.Dropout(p), nn.MaxPool2d(2)]
            s, c_in = _conv_out(s, k) // 2, width
        if s < 1:
            raise UserError(f"input size {size} is too small for the AlexNet trunk")
        layers += [nn.Flatten(),
                   BlipLinear(c_in * s * s, fc_width, **blip), nn.ReLU(), nn.Dropout(d2),
                   BlipLinear(fc_width, fc_width, **blip), nn.ReLU(), nn.Dropout(d2)]
        self.trunk = nn.Sequential(*layers)
        _init_trunk(self.trunk, init)
        self.heads = nn.ModuleList(nn.Linear(fc_width, n) for n in heads)
        self.constructor_kwargs = {
            "arch": "alexnet", "input_shape": [int(v) for v in input_shape], "head_sizes": heads,
            "conv_mult": float(conv_mult), "fc_width": int(fc_width), "dropout": [d1, d2],
            "max_bits": int(max_bits), "f_prior": float(f_prior), "init": init,
        }


ARCHS: dict[str, type[_MultiHead]] = {"mlp": MLP, "alexnet": AlexNet}


def build_model(arch: str, **kwargs: Any) -> _MultiHead:
    """Build ``arch`` (``"mlp"`` or ``"alexnet"``) with its keyword arguments.

    :raises ValueError: for an unknown architecture or argument.
    """
    if arch not in ARCHS:
        raise UserError(f"unknown model arch {arch!r}; choose one of {sorted(ARCHS)}")
    cls = ARCHS[arch]
    import inspect

    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise UserError(f"unknown model option(s) {unknown} for arch {arch!r}; it takes {allowed}")
    from ..values import coerce_kwargs

    return cls(**coerce_kwargs(cls.__init__, kwargs, what=f"model option (arch {arch})", error=UserError))
