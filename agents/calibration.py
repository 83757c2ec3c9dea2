"""The update ``--precision auto`` times: the learner's own network and minibatch.

:func:`update_workload` builds the policy exactly as :class:`~blip_rl.agents.learner.PPOLearner`
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

__all__ = ["update_workload", "atari_update"]

#: Actions of the calibration's head (Kung Fu Master's minimal set; the head is tiny either way).
N_ACTIONS = 14


def update_workload(cfg: TrainConfig | None = None) -> Workload:
    """The calibration workload of a run with ``cfg`` (default: the default config, Atari).

    The cache key names the trunk, its width, the observation and the minibatch, so a run with
    another network or batch has a verdict of its own (Atari's keys are those of before).
    """
    from .learner import minibatch_size, obs_space, policy_kwargs

    cfg = cfg or TrainConfig()
    batch = minibatch_size(cfg)
    observation_space = obs_space(cfg)
    kwargs = policy_kwargs(cfg, torch.device("cpu"), bf16=False)["extractor_kwargs"]
    trunk, width = kwargs["trunk"], kwargs["features_dim"]
    high = int(min(observation_space.high.max(), 255)) if observation_space.dtype == np.uint8 else 1

    def make_step(device: torch.device, bf16: bool) -> Callable[[], None]:
        torch.manual_seed(0)
        policy = MultiHeadPolicy(observation_space, spaces.Discrete(N_ACTIONS),
                                 lambda _: cfg.ppo.learning_rate, **policy_kwargs(cfg, device, bf16=bf16)).to(device)
        policy.autocast_dtype = torch.bfloat16 if bf16 else None
        policy.set_training_mode(True)
        gen = np.random.default_rng(0)
        # SB3's rollout buffer holds observations as float32 0..255; so does this batch.
        obs = torch.as_tensor(gen.integers(0, high + 1, (batch, *observation_space.shape)), dtype=torch.float32,
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

    shape = observation_space.shape
    name = (f"atari-trunk-f{width}-s{shape[0]}-b{batch}" if trunk == "atari" and tuple(shape[1:]) == (84, 84) else
            f"{trunk}-trunk-f{width}-o{'x'.join(map(str, shape))}-b{batch}")
    return Workload(name=name, make_step=make_step,
                    description=f"the {trunk} trunk (FC {width}) and heads, forward + backward + Adam "
                                f"on a minibatch of {batch}")


#: The name of before MinAtar and Gymnasium tasks (an Atari run's workload is the same).
atari_update = update_workload
