"""The update ``--precision auto`` times: the Atari learner's own network and minibatch.

:func:`atari_update` builds the policy exactly as :class:`~blip_rl.agents.learner.AtariLearner`
does (the same :func:`~blip_rl.agents.learner.policy_kwargs`, so the trunk, its memory layout in
each precision, the heads and the optimizer are the run's), and times one PPO-shaped update of
a minibatch the learner's size: forward through trunk and heads, a loss of log-probabilities,
values and entropy, backward, optimizer step. :mod:`blip_rl.precision` calibrates with it.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from gymnasium import spaces

from blip_rl.config import TrainConfig
from blip_rl.precision import Workload

from .policies import MultiHeadPolicy

__all__ = ["atari_update"]

#: Actions of the calibration's head (Kung Fu Master's minimal set; the head is tiny either way).
N_ACTIONS = 14


def atari_update(cfg: TrainConfig | None = None) -> Workload:
    """The calibration workload of an Atari run with ``cfg`` (default: the default config).

    The cache key names the trunk width, frame stack and minibatch, so a run with another
    network or batch has a verdict of its own.
    """
    from .learner import minibatch_size, obs_space, policy_kwargs

    cfg = cfg or TrainConfig()
    batch = minibatch_size(cfg)
    observation_space = obs_space(cfg)

    def make_step(device: torch.device, bf16: bool) -> Callable[[], None]:
        torch.manual_seed(0)
        policy = MultiHeadPolicy(observation_space, spaces.Discrete(N_ACTIONS),
                                 lambda _: cfg.ppo.learning_rate, **policy_kwargs(cfg, device, bf16=bf16)).to(device)
        policy.autocast_dtype = torch.bfloat16 if bf16 else None
        policy.set_training_mode(True)
        gen = np.random.default_rng(0)
        # SB3's rollout buffer holds observations as float32 0..255; so does this batch.
        obs = torch.as_tensor(gen.integers(0, 256, (batch, *observation_space.shape)), dtype=torch.float32,
                              device=device)
        actions = torch.as_tensor(gen.integers(0, N_ACTIONS, batch), device=device)

        def step() -> None:
            values, log_prob, entropy = policy.evaluate_actions(obs, actions)
            loss = -log_prob.mean() + 0.5 * values.square().mean() - 0.01 * entropy.mean()
            policy.optimizer.zero_grad()
            loss.backward()
            policy.optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        return step

    return Workload(name=f"atari-trunk-f{cfg.features_dim}-s{cfg.env.frame_stack}-b{batch}", make_step=make_step,
                    description=f"the Atari trunk (FC {cfg.features_dim}) and heads, forward + backward + Adam "
                                f"on a minibatch of {batch}")
