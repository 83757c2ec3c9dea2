"""Trunks as stable-baselines3 features extractors, built from BLIP layers, chosen by observation.

* ``atari`` (:class:`BlipAtariCNN`): conv 32x8x8/4 -> conv 64x4x4/2 -> conv 128x3x3/1 -> linear
  6272 -> 1024, ReLU after each (the authors' RL network; BLIP_METHOD.md), for 84x84 frames.
* ``minatar`` (:class:`BlipMinAtarCNN`): conv 16x3x3/1 -> linear 1024 -> 128 (Young & Tian 2019's
  MinAtar network), for small grids (both sides under 36).
* ``mlp`` (:class:`BlipMLP`): two fully connected layers of 64, for flat vectors.

:func:`choose_trunk` picks one from the observation shape (config ``trunk`` overrides);
``features_dim: 0`` takes the trunk's own width. SB3 scales uint8 images by 1/255 before the
extractor.
"""
from __future__ import annotations

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from blip_rl.core import DEFAULT_F_PRIOR, DEFAULT_MAX_BITS, BlipConv2d, BlipLinear

__all__ = ["BlipAtariCNN", "BlipMinAtarCNN", "BlipMLP", "TRUNKS", "DEFAULT_WIDTH", "choose_trunk"]


class BlipAtariCNN(BaseFeaturesExtractor):
    """Three conv layers and one fully connected layer, BLIP-quantized (or plain, for baselines).

    :param observation_space: channel-first image space, e.g. Box(0, 255, (4, 84, 84), uint8).
    :param features_dim: width of the fully connected layer (paper: 1024).
    :param quantized: BLIP layers (True) or plain ``nn.Conv2d`` / ``nn.Linear`` (False).
    :param max_bits: N, bits per parameter (paper: 20).
    :param f_prior: F_prior of the BLIP layers.
    :param channels_last: keep conv weights and activations in channels-last memory format
        (faster convolutions on many CPUs and on GPUs with tensor cores).
    :param layer_norm: a LayerNorm without parameters between each layer and its ReLU (config
        ``layer_norm``; a plasticity aid, Lyle et al. 2023). It has nothing to learn, so BLIP
        and every other method see the same parameters as without it.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        features_dim: int = 1024,
        *,
        quantized: bool = True,
        max_bits: int = DEFAULT_MAX_BITS,
        f_prior: float = DEFAULT_F_PRIOR,
        channels_last: bool = False,
        layer_norm: bool = False,
    ) -> None:
        super().__init__(observation_space, features_dim)
        self.channels_last = channels_last
        if len(observation_space.shape) != 3:
            raise ValueError(f"BlipAtariCNN needs channel-first images (C, H, W), got {observation_space.shape}")
        c = observation_space.shape[0]
        if quantized:
            kw = {"max_bits": max_bits, "f_prior": f_prior}
            conv, lin = (lambda *a, **k: BlipConv2d(*a, **k, **kw)), (lambda *a, **k: BlipLinear(*a, **k, **kw))
        else:
            conv, lin = nn.Conv2d, nn.Linear
        self.cnn = _stack([conv(c, 32, 8, stride=4), conv(32, 64, 4, stride=2), conv(64, 128, 3, stride=1),
                           nn.Flatten()], observation_space.shape, layer_norm)
        with torch.no_grad():
            n_flat = self.cnn(torch.zeros(1, *observation_space.shape)).shape[1]
        self.linear = _stack([lin(n_flat, features_dim)], (n_flat,), layer_norm)
        if channels_last:
            self.cnn.to(memory_format=torch.channels_last)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            observations = observations.contiguous(memory_format=torch.channels_last)
        return self.linear(self.cnn(observations))


def _stack(layers: list[nn.Module], in_shape: tuple[int, ...], layer_norm: bool) -> nn.Sequential:
    """``layers`` with a ReLU after each, and with ``layer_norm`` a parameter-free LayerNorm over
    each layer's whole output (channels and positions for a conv) between the layer and its ReLU."""
    out: list[nn.Module] = []
    x = torch.zeros(1, *in_shape)
    with torch.no_grad():
        for layer in layers:
            if isinstance(layer, nn.Flatten):
                out.append(layer)
                x = layer(x)
                continue
            x = layer(x)
            out.append(layer)
            if layer_norm:
                out.append(nn.LayerNorm(tuple(x.shape[1:]), elementwise_affine=False))
            out.append(nn.ReLU())
    return nn.Sequential(*out)


def _layers(quantized: bool, max_bits: int, f_prior: float):
    if not quantized:
        return nn.Conv2d, nn.Linear
    kw = {"max_bits": max_bits, "f_prior": f_prior}
    return (lambda *a, **k: BlipConv2d(*a, **k, **kw)), (lambda *a, **k: BlipLinear(*a, **k, **kw))


class BlipMinAtarCNN(BaseFeaturesExtractor):
    """MinAtar's network (Young & Tian 2019): one 3x3 conv of 16 channels, stride 1, then one
    fully connected layer (128 wide), ReLU after each; BLIP-quantized (or plain).

    Same options as :class:`BlipAtariCNN` (``layer_norm`` included); ``channels`` widens the conv
    (config ``trunk_channels``).
    """

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 128, *, quantized: bool = True,
                 max_bits: int = DEFAULT_MAX_BITS, f_prior: float = DEFAULT_F_PRIOR, channels_last: bool = False,
                 channels: int = 16, layer_norm: bool = False) -> None:
        super().__init__(observation_space, features_dim)
        if len(observation_space.shape) != 3:
            raise ValueError(f"BlipMinAtarCNN needs channel-first grids (C, H, W), got {observation_space.shape}")
        self.channels_last = channels_last
        conv, lin = _layers(quantized, max_bits, f_prior)
        c, h, w = observation_space.shape
        self.cnn = _stack([conv(c, channels, 3, stride=1), nn.Flatten()], (c, h, w), layer_norm)
        n_flat = channels * (h - 2) * (w - 2)
        self.linear = _stack([lin(n_flat, features_dim)], (n_flat,), layer_norm)
        if channels_last:
            self.cnn.to(memory_format=torch.channels_last)

    forward = BlipAtariCNN.forward  # convs (in the chosen memory layout), then the linear layer


class BlipMLP(BaseFeaturesExtractor):
    """Two fully connected layers (``features_dim`` wide, ReLU after each) for flat vectors."""

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 64, *, quantized: bool = True,
                 max_bits: int = DEFAULT_MAX_BITS, f_prior: float = DEFAULT_F_PRIOR, channels_last: bool = False,
                 channels: int = 0, layer_norm: bool = False) -> None:
        super().__init__(observation_space, features_dim)
        _, lin = _layers(quantized, max_bits, f_prior)
        n_in = int(torch.tensor(observation_space.shape).prod())
        self.channels_last = False
        self.linear = _stack([nn.Flatten(), lin(n_in, features_dim), lin(features_dim, features_dim)],
                             tuple(observation_space.shape), layer_norm)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(observations.float())


#: Trunks by name (checkpoints record the name in ``extractor_kwargs["trunk"]``).
TRUNKS = {"atari": BlipAtariCNN, "minatar": BlipMinAtarCNN, "mlp": BlipMLP}
#: Each trunk's own width, taken where ``features_dim`` is 0.
DEFAULT_WIDTH = {"atari": 1024, "minatar": 128, "mlp": 64}
#: Trunk choices of the config (``auto``: by observation shape).
TRUNK_CHOICES = ("auto", *TRUNKS)


def choose_trunk(shape: tuple[int, ...], requested: str = "auto") -> str:
    """The trunk for observations of ``shape`` (channel-first images or flat vectors).

    :raises ValueError: a shape no trunk takes, or a requested trunk that cannot take it.
    """
    shape = tuple(int(s) for s in shape)
    if requested not in TRUNK_CHOICES:
        raise ValueError(f"unknown trunk {requested!r}; use one of {', '.join(TRUNK_CHOICES)}")
    if requested == "auto":
        if len(shape) == 1:
            return "mlp"
        if len(shape) == 3:
            return "minatar" if max(shape[1:]) < 36 else "atari"
        raise ValueError(f"no trunk takes observations of shape {shape}: give images (C, H, W) or flat vectors")
    if requested == "atari" and (len(shape) != 3 or min(shape[1:]) < 36):
        raise ValueError(f"the atari trunk (8x8/4, 4x4/2, 3x3/1 convs) needs images of at least 36x36; got {shape}")
    if requested == "minatar" and (len(shape) != 3 or min(shape[1:]) < 3):
        raise ValueError(f"the minatar trunk (one 3x3 conv) needs images of at least 3x3; got {shape}")
    return requested
