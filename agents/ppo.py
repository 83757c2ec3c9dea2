"""ContinualPPO: stable-baselines3's PPO with a continual method's hooks in its update.

The one override of SB3 in this project. ``train`` mirrors ``stable_baselines3.ppo.PPO.train``
of SB3 2.9.2 line for line, with four additions: the method's ``penalty()`` is added to the
loss before ``backward()``, its ``before_step()`` runs between ``backward()`` and the gradient
clipping, a non-finite loss stops training with a clear error, and the method's
``after_update()`` and then ``after_update`` (if set) are called at the end, with the updated
parameters. Statistics stay
tensors until the end of the update (no device sync per minibatch). The "fast" mode runs the
trunk under bf16 autocast in rollouts and updates (:class:`MultiHeadPolicy.extract_features`),
with its weights cast once per rollout (:meth:`MultiHeadPolicy.weight_cast_cache`); parameters,
optimizer, clipping, bits and Fisher stay float32. ``after_step`` runs through the optimizer's
step hook (:meth:`ContinualMethod.attach_optimizer`), so it runs after every ``optimizer.step()``.

Per game (``start_game``): a fresh optimizer and linear LR decay within the game, the game's
head and env, and fresh episode statistics.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.utils import explained_variance
from stable_baselines3.common.vec_env import VecEnv
from torch.nn import functional as F

from blip_rl.core import ContinualMethod

__all__ = ["ContinualPPO", "NonFiniteLossError", "SB3_RANGE"]

#: The stable-baselines3 releases ``ContinualPPO.train`` was checked against, line for line (it
#: mirrors 2.9.2). setup.py requires exactly this range; tests/agents/test_sb3_pin.py fails with
#: a clear message where the installed SB3 is outside it. Widen it only after re-reading
#: ``stable_baselines3/ppo/ppo.py``'s ``train()`` of the new release against the one below.
SB3_RANGE = ">=2.9.2,<2.10"


class NonFiniteLossError(FloatingPointError):
    """The PPO loss became NaN or inf; the last good checkpoint is kept."""


class ContinualPPO(PPO):
    """PPO whose update calls a :class:`ContinualMethod`'s hooks.

    :param method: the continual method (``None``: plain PPO, identical to SB3's).
    :param fast: bf16 autocast for the network's forward and backward in the update (CPU with
        AVX512-BF16 or AMX, or CUDA); fp32 master weights.
    """

    def __init__(self, *args: Any, method: ContinualMethod | None = None, fast: bool = False, **kwargs: Any) -> None:
        self.method = method
        self.fast = fast
        self._game_start = 0
        self._game_budget = 0
        self._hook = None
        #: called at the end of every update (train()), with the updated parameters.
        self.after_update: Callable[[], None] | None = None
        super().__init__(*args, **kwargs)
        if fast:
            self.policy.autocast_dtype = th.bfloat16

    # -- per game --------------------------------------------------------------------------------
    def start_game(self, env: VecEnv, head: int, budget: int, *, adam_eps: float = 1e-5) -> None:
        """Switch to a game: its env and head, a fresh optimizer, LR decay over ``budget`` steps."""
        self.policy.activate(head)
        self.action_space = env.action_space
        if not isinstance(self.action_space, spaces.Discrete) or self.action_space.n != self.policy.action_space.n:
            raise ValueError(f"env action space {env.action_space} does not match head {head}")
        if env.num_envs != self.n_envs:
            raise ValueError(f"every game must use the same number of envs ({self.n_envs}), got {env.num_envs}")
        self.env = env
        self._last_obs = None  # learn() resets the new env
        self._last_episode_starts = np.ones((self.n_envs,), dtype=bool)
        self.ep_info_buffer = deque(maxlen=self._stats_window_size)
        self.ep_success_buffer = deque(maxlen=self._stats_window_size)
        self._game_start = self.num_timesteps
        self._game_budget = int(budget)
        params = [p for p in self.policy.parameters() if p.requires_grad]
        self.policy.optimizer = self.policy.optimizer_class(
            params, lr=self.lr_schedule(1.0), **{**self.policy.optimizer_kwargs, "eps": adam_eps}
        )
        if self.method is not None:
            self._hook = self.method.attach_optimizer(self.policy.optimizer)

    # -- what the learner needs of SB3's internals (the one place that touches them) ---------------
    def steps_left(self, budget: int) -> int:
        """Env steps of the current game still to learn for a budget of ``budget`` per game."""
        return self._game_start + int(budget) - self.num_timesteps

    def last_rollout_observations(self) -> np.ndarray:
        """The last rollout's observations, ``(n_steps * n_envs, *obs_shape)`` (uint8)."""
        # After an update SB3 has flattened the buffer to (n_steps * n_envs, *obs_shape).
        return self.rollout_buffer.observations.reshape(-1, *self.observation_space.shape)

    def rollout_without_update(self) -> None:
        """Fill the rollout buffer with one rollout of the current policy, with no update and no
        step counted (Fisher and drift states for a run resumed after a game's last update)."""
        steps, episodes = self.num_timesteps, self._episode_num
        _, callback = self._setup_learn(self.n_steps * self.n_envs, callback=None, reset_num_timesteps=False)
        callback.on_training_start(locals(), globals())
        self.collect_rollouts(self.env, callback, self.rollout_buffer, n_rollout_steps=self.n_steps)
        self.num_timesteps, self._episode_num = steps, episodes

    def progress_state(self) -> dict[str, Any]:
        """What continuing the current game needs: the optimizer, the game's start, update count."""
        return {"optimizer": self.policy.optimizer.state_dict(), "game_start": self._game_start,
                "n_updates": self._n_updates}

    def load_progress_state(self, state: dict[str, Any]) -> None:
        """Take up :meth:`progress_state` after :meth:`start_game` of the same game."""
        self.policy.optimizer.load_state_dict(state["optimizer"])
        self._game_start = int(state["game_start"])
        self._n_updates = int(state["n_updates"])

    def _update_current_progress_remaining(self, num_timesteps: int, total_timesteps: int) -> None:
        # Linear LR decay within each game (a new schedule per game), not over the whole run.
        if self._game_budget > 0:
            done = (num_timesteps - self._game_start) / self._game_budget
            self._current_progress_remaining = max(0.0, 1.0 - done)
        else:
            super()._update_current_progress_remaining(num_timesteps, total_timesteps)

    def collect_rollouts(self, *args: Any, **kwargs: Any) -> bool:
        # Parameters are fixed during a rollout: in fast mode the trunk's bf16 weights are cast once.
        with self.policy.weight_cast_cache():
            return super().collect_rollouts(*args, **kwargs)

    # -- the update (mirrors SB3 2.9.2 PPO.train) ------------------------------------------------
    def train(self) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)  # type: ignore[operator]
        if self.clip_range_vf is not None:
            clip_range_vf = self.clip_range_vf(self._current_progress_remaining)  # type: ignore[operator]

        # Statistics stay on the device until the end of the update (no per-minibatch sync).
        entropy_losses, pg_losses, value_losses, clip_fractions, penalties, grad_norms = [], [], [], [], [], []
        approx_kl_divs: list[th.Tensor] = []

        continue_training = True
        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            for rollout_data in self.rollout_buffer.get(self.batch_size):
                actions = rollout_data.actions
                if isinstance(self.action_space, spaces.Discrete):
                    actions = rollout_data.actions.long().flatten()

                values, log_prob, entropy = self.policy.evaluate_actions(rollout_data.observations, actions)
                values = values.flatten()
                advantages = rollout_data.advantages
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

                ratio = th.exp(log_prob - rollout_data.old_log_prob)
                policy_loss_1 = advantages * ratio
                policy_loss_2 = advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)
                policy_loss = -th.min(policy_loss_1, policy_loss_2).mean()

                pg_losses.append(policy_loss.detach())
                clip_fractions.append(th.mean((th.abs(ratio - 1) > clip_range).float()))

                if self.clip_range_vf is None:
                    values_pred = values
                else:
                    values_pred = rollout_data.old_values + th.clamp(
                        values - rollout_data.old_values, -clip_range_vf, clip_range_vf
                    )
                value_loss = F.mse_loss(rollout_data.returns, values_pred)
                value_losses.append(value_loss.detach())

                if entropy is None:
                    entropy_loss = -th.mean(-log_prob)
                else:
                    entropy_loss = -th.mean(entropy)
                entropy_losses.append(entropy_loss.detach())

                loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
                penalty = self.method.penalty() if self.method is not None else None
                if penalty is not None:
                    loss = loss + penalty
                    penalties.append(penalty.detach())

                with th.no_grad():
                    log_ratio = log_prob - rollout_data.old_log_prob
                    approx_kl_div = th.mean((th.exp(log_ratio) - 1) - log_ratio)
                    approx_kl_divs.append(approx_kl_div)

                if self.target_kl is not None and approx_kl_div.item() > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(f"Early stopping at step {epoch} due to reaching max kl: {approx_kl_div.item():.2f}")
                    break

                self.policy.optimizer.zero_grad()
                loss.backward()
                if self.method is not None:
                    self.method.before_step()  # gradient transforms, on the raw gradients
                grad_norms.append(th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm))
                self.policy.optimizer.step()

            self._n_updates += 1
            if not continue_training:
                break

        last_loss = float(loss.item())
        finite_losses = bool(th.isfinite(th.stack(pg_losses + value_losses + penalties)).all())
        bad_params = [n for n, p in self.policy.named_parameters() if not bool(th.isfinite(p).all())]
        if not (np.isfinite(last_loss) and finite_losses) or bad_params:
            what = f"parameters {bad_params[:3]}" if bad_params else "the PPO loss"
            raise NonFiniteLossError(
                f"{what} became NaN/inf at env step {self.num_timesteps} (last loss {last_loss}); "
                "lower the learning rate or check the environment's rewards"
            )
        explained_var = explained_variance(self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten())

        def mean(xs: list[th.Tensor]) -> float:
            return float(th.stack(xs).float().mean()) if xs else float("nan")

        self.logger.record("train/entropy_loss", mean(entropy_losses))
        self.logger.record("train/policy_gradient_loss", mean(pg_losses))
        self.logger.record("train/value_loss", mean(value_losses))
        self.logger.record("train/approx_kl", mean(approx_kl_divs))
        self.logger.record("train/clip_fraction", mean(clip_fractions))
        self.logger.record("train/loss", last_loss)
        self.logger.record("train/explained_variance", explained_var)
        if penalties:
            self.logger.record("train/method_penalty", mean(penalties))
        #: mean gradient norm (before clipping) of this update's minibatch steps (plasticity metrics)
        self.last_grad_norm = mean(grad_norms)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if self.clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)
        if self.method is not None:
            self.method.after_update()  # e.g. ReDo's recycling, on the parameters just updated
        if self.after_update is not None:
            self.after_update()
