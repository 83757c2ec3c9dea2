"""The paper's Atari trunk as a stable-baselines3 features extractor, built from BLIP layers.

conv 32x8x8/4 -> conv 64x4x4/2 -> conv 128x3x3/1 -> linear 6272 -> 1024, ReLU after each (the
authors' RL network; BLIP_METHOD.md). SB3 scales uint8 images by 1/255 before the extractor.
"""
from __future__ import annotations

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from blip_rl.core import DEFAULT_F_PRIOR, DEFAULT_MAX_BITS, BlipConv2d, BlipLinear

__all__ = ["BlipAtariCNN"]


class BlipAtariCNN(BaseFeaturesExtractor):
    """Three conv layers and one fully connected layer, BLIP-quantized (or plain, for baselines).

    :param observation_space: channel-first image space, e.g. Box(0, 255, (4, 84, 84), uint8).
    :param features_dim: width of the fully connected layer (paper: 1024).
    :param quantized: BLIP layers (True) or plain ``nn.Conv2d`` / ``nn.Linear`` (False).
    :param max_bits: N, bits per parameter (paper: 20).
    :param f_prior: F_prior of the BLIP layers.
    :param channels_last: keep conv weights and activations in channels-last memory format
        (faster convolutions on many CPUs and on GPUs with tensor cores).
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
        self.cnn = nn.Sequential(
            conv(c, 32, 8, stride=4), nn.ReLU(),
            conv(32, 64, 4, stride=2), nn.ReLU(),
            conv(64, 128, 3, stride=1), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n_flat = self.cnn(torch.zeros(1, *observation_space.shape)).shape[1]
        self.linear = nn.Sequential(lin(n_flat, features_dim), nn.ReLU())
        if channels_last:
            self.cnn.to(memory_format=torch.channels_last)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            observations = observations.contiguous(memory_format=torch.channels_last)
        return self.linear(self.cnn(observations))
