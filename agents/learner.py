"""The RL learner: ContinualPPO on one task after another, behind the scheduler's protocol.

Tasks of any environment family (:mod:`blip_rl.envs.family`: Atari, MinAtar, any Gymnasium
env); the family gives the envs, the observation space and the normalization, and the trunk is
chosen from the observation shape (:func:`blip_rl.agents.extractors.choose_trunk`).
It owns the env of the current game, the multi-head policy and the PPO loop; the scheduler
(:mod:`blip_rl.continual.scheduler`) tells it which game to learn, asks for Fisher inputs and
evaluations, and saves checkpoints through it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure

from blip_rl.config import TrainConfig, to_dict
from blip_rl.continual import Evaluation
from blip_rl.continual.rng import get_rng_state, set_rng_state
from blip_rl.core import ContinualMethod, FisherData
from blip_rl.envs.family import family_of, parse_tasks
from blip_rl.system import Runtime, resolve_runtime

from .calibration import update_workload
from .checkpoint import LEARNER
from .evaluation import evaluate_game
from .extractors import DEFAULT_WIDTH, choose_trunk
from .policies import MultiHeadPolicy
from .ppo import ContinualPPO

__all__ = ["PPOLearner", "AtariLearner", "obs_space", "minibatch_size", "policy_kwargs"]


class _Hooks(BaseCallback):
    """Stops SB3's loop at the next step once ``should_stop()`` says so (the update in progress
    finishes first; the partial rollout is dropped)."""

    def __init__(self, should_stop: Callable[[], bool] | None) -> None:
        super().__init__()
        self.should_stop = should_stop
        self.stopped = False
        self._rollout_start = 0

    def _on_rollout_start(self) -> None:
        self._rollout_start = self.model.num_timesteps

    def _on_step(self) -> bool:
        if self.should_stop is not None and self.should_stop():
            # The partial rollout is dropped untrained: count only steps that reached an update.
            self.stopped = True
            self.model.num_timesteps = self._rollout_start
            return False
        return True


def obs_space(cfg: TrainConfig, tasks: list | None = None) -> spaces.Box:
    """The trunk's observation space: the first task's family's (one shape for all tasks of a run,
    :func:`blip_rl.envs.family.parse_tasks` checks it). Atari: ``frame_stack`` 84x84 frames."""
    first = (tasks or parse_tasks(cfg.games[:1]))[0]
    return family_of(first).observation_space(first, cfg.env)


def minibatch_size(cfg: TrainConfig) -> int:
    """PPO's minibatch: the rollout (``ppo.n_steps`` x ``env.n_envs``) over ``ppo.n_minibatches``."""
    return cfg.ppo.n_steps * cfg.env.n_envs // cfg.ppo.n_minibatches


def _extractor_kwargs(cfg: TrainConfig, device: torch.device, *, bf16: bool,
                      space: spaces.Box | None = None) -> dict[str, Any]:
    # channels-last convolutions: faster in fp32 on CPU (1.1-2.6x per layer here) and on CUDA
    # tensor cores; under bf16 autocast on CPU the plain layout is about as fast (docs/benchmarks.md).
    space = space if space is not None else obs_space(cfg)
    try:
        trunk = choose_trunk(space.shape, cfg.trunk)
    except ValueError as exc:
        from blip_rl.errors import UserError

        raise UserError(f"trunk: {exc}") from None
    # (not for the small grids of the minatar trunk: there its flatten would copy every batch)
    channels_last = trunk == "atari" and (device.type == "cuda" or not bf16)
    kwargs = {"trunk": trunk, "features_dim": cfg.features_dim or DEFAULT_WIDTH[trunk], "quantized": True,
              "max_bits": cfg.max_bits, "f_prior": cfg.layer_f_prior, "channels_last": channels_last}
    if trunk == "minatar" and cfg.trunk_channels:
        kwargs["channels"] = cfg.trunk_channels
    if cfg.layer_norm:  # only where on: checkpoints without it keep the kwargs they had
        kwargs["layer_norm"] = True
    return kwargs


def policy_kwargs(cfg: TrainConfig, device: torch.device, *, bf16: bool,
                  space: spaces.Box | None = None) -> dict[str, Any]:
    """:class:`MultiHeadPolicy`'s keyword arguments for a run (the learner and the precision
    calibration build their policies from this one place)."""
    return {"extractor_kwargs": _extractor_kwargs(cfg, device, bf16=bf16, space=space),
            "optimizer_kwargs": {"eps": cfg.ppo.adam_eps, "fused": cfg.ppo.fused_adam}}


class PPOLearner:
    """Continual PPO over the tasks of ``cfg.games`` (see :class:`blip_rl.config.TrainConfig`).

    ``kind`` names it in checkpoints (:mod:`blip_rl.agents.checkpoint` reads them).

    :param cfg: the resolved run configuration.
    :param runtime: device, precision and threads chosen for this machine
        (:func:`blip_rl.system.resolve_runtime`); by default resolved from ``cfg``.
    :param tb_dir: where SB3 writes its training scalars (``train/*``, ``rollout/*``, ``time/*``),
        or ``None`` for no logging.
    :param purge_step: on resume, the checkpoint's global step (TensorBoard's purge_step).
    """

    kind = LEARNER

    def __init__(self, cfg: TrainConfig, *, runtime: Runtime | None = None, tb_dir: Path | None = None,
                 purge_step: int | None = None) -> None:
        self.cfg = cfg
        self.games = parse_tasks(cfg.games, env_cfg=cfg.env)
        self.task_names = [g.name for g in self.games]
        self.observation_space = obs_space(cfg, self.games)
        self.runtime = runtime or resolve_runtime(device=cfg.device, precision=cfg.precision, threads=cfg.threads,
                                                  n_envs=cfg.env.n_envs, workload=update_workload(cfg))
        self.runtime.apply()
        self.device = torch.device(self.runtime.device)
        self.bf16 = self.runtime.precision == "bf16"
        self.env = self._make_env(0)
        ppo = cfg.ppo
        lr = ppo.learning_rate
        self.model = ContinualPPO(
            MultiHeadPolicy,
            self.env,
            learning_rate=(lambda progress: lr * progress) if ppo.lr_decay else lr,
            n_steps=ppo.n_steps,
            batch_size=minibatch_size(cfg),
            n_epochs=ppo.n_epochs,
            gamma=ppo.gamma,
            gae_lambda=ppo.gae_lambda,
            clip_range=ppo.clip_range,
            ent_coef=ppo.ent_coef,
            vf_coef=ppo.vf_coef,
            max_grad_norm=ppo.max_grad_norm,
            policy_kwargs=policy_kwargs(cfg, self.device, bf16=self.bf16, space=self.observation_space),
            seed=cfg.seed,
            device=self.device,
            fast=self.bf16,
            verbose=0,
        )
        if tb_dir is not None:
            logger = configure(str(tb_dir), ["tensorboard"])
            if purge_step is not None:
                # On resume, hide SB3's own events after the checkpoint's step, as RunLogger does.
                from stable_baselines3.common.logger import TensorBoardOutputFormat
                from torch.utils.tensorboard import SummaryWriter

                for fmt in logger.output_formats:
                    if isinstance(fmt, TensorBoardOutputFormat):
                        fmt.writer.close()
                        fmt.writer = SummaryWriter(str(tb_dir), purge_step=purge_step)
            self.model.set_logger(logger)
        self.policy: MultiHeadPolicy = self.model.policy  # type: ignore[assignment]
        self.trunk = self.policy.trunk
        self._env_game = 0
        self._resume: dict[str, Any] | None = None
        #: whether the rollout buffer holds states of the current game (not after a resume that
        #: found nothing left to learn: fisher_data then collects one rollout first)
        self._rollout_done = False

    # -- the scheduler's protocol ----------------------------------------------------------------
    @property
    def global_step(self) -> int:
        return int(self.model.num_timesteps)

    def _make_env(self, k: int):
        e = self.cfg.env
        return family_of(self.games[k]).make_vec_env(self.games[k], n_envs=e.n_envs, seed=self.cfg.seed + 1000 * k,
                                                     training=True, env_cfg=e, num_threads=self.runtime.env_threads)

    def begin_task(self, k: int, method: ContinualMethod, *, budget: int | None = None) -> None:
        """Game k's env, head and a fresh optimizer; the learning rate decays over ``budget`` env
        steps (default ``steps_per_game``; a retraining phase passes its own)."""
        if self._env_game != k:
            self.env.close()
            self.env = self._make_env(k)
            self._env_game = k
            self._rollout_done = False
        while self.policy.n_heads <= k:
            self.policy.add_head(self.games[self.policy.n_heads].n_actions)
        self.model.method = method
        self.model.start_game(self.env, k, budget or self.cfg.steps_per_game, adam_eps=self.cfg.ppo.adam_eps)
        if self._resume is not None and self._resume["task"] == k:
            progress, self._resume = self._resume, None
            self.model.load_progress_state(progress)
            set_rng_state(progress["rng"])

    def learn(self, k: int, budget: int, on_update: Callable[[int], None],
              should_stop: Callable[[], bool] | None = None) -> bool:
        """PPO on game k until ``budget`` env steps of it are done; False if stopped early."""
        left = self.model.steps_left(budget)
        if left <= 0:
            return True
        self._rollout_done = True
        hooks = _Hooks(should_stop)
        # After the update, not at the rollout's end (before it): evaluations and progress
        # checkpoints then hold the parameters trained on every step they count.
        self.model.after_update = lambda: on_update(self.global_step)
        try:
            self.model.learn(total_timesteps=left, reset_num_timesteps=False, callback=hooks,
                             tb_log_name=self.task_names[k])
        finally:
            self.model.after_update = None
        return not hooks.stopped

    def finished(self, k: int, budget: int) -> bool:
        """Whether game k has no steps left of ``budget`` (the update just made was its last)."""
        return self.model.steps_left(budget) <= 0

    def fisher_data(self, k: int) -> FisherData:
        """States from the policy's own last rollout on game k (``cfg.fisher_samples`` of them)."""
        if not self._rollout_done:  # resumed after the game's last update: the buffer is empty
            self.model.rollout_without_update()
            self._rollout_done = True
        obs = self.model.last_rollout_observations()
        rng = np.random.default_rng(self.cfg.seed + k)
        if len(obs) > self.cfg.fisher_samples:
            obs = obs[np.sort(rng.choice(len(obs), self.cfg.fisher_samples, replace=False))]
        inputs = torch.as_tensor(obs, device=self.device)
        gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed + k)
        self.policy.set_training_mode(False)
        return FisherData(inputs, lambda x: self.policy.head_logits(x, k, exact=True),
                          batch_size=self.cfg.fisher_batch_size, generator=gen)

    def task_outputs(self, inputs: torch.Tensor, k: int, *, training: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and values of head k on observations (uint8 frames), with gradients."""
        if not training:
            self.policy.set_training_mode(False)
        return self.policy.head_outputs(torch.as_tensor(inputs, device=self.device), k)

    def evaluate(self, k: int, *, on_episode: Callable[[int, int], None] | None = None,
                 on_step: Callable[[int], None] | None = None) -> Evaluation:
        """Play ``cfg.eval.episodes`` games of game k at once, with head k."""
        self.policy.set_training_mode(False)
        played = evaluate_game(self.policy, k, self.games[k], self.cfg, seed=self.cfg.seed, method=self.model.method,
                               on_episode=on_episode, on_step=on_step, num_threads=self.runtime.env_threads)
        return Evaluation(score=float(np.mean(played.scores)), episodes=len(played.scores), cut=played.n_cut,
                          mean_steps=float(np.mean(played.lengths)), env_steps=played.env_steps,
                          seconds=played.seconds)

    def normalize(self, k: int, score: float) -> float | None:
        return family_of(self.games[k]).normalize(self.games[k], score, self.cfg.normalization)

    def checkpoint_state(self, *, tasks_done: int, resumable: bool = False) -> dict[str, Any]:
        """The learner's part of a checkpoint (:mod:`blip_rl.continual.checkpoint`): what
        rebuilds the policy alone, and with ``resumable`` what continuing the game in progress
        needs (optimizer, counters, RNG states)."""
        state = {
            "n_actions": [h.out_features for h in self.policy.action_heads],
            "extractor_kwargs": _extractor_kwargs(self.cfg, self.device, bf16=self.bf16, space=self.observation_space),
            "frame_stack": self.cfg.env.frame_stack,
            "family": self.games[0].family,
            "obs_space": {"shape": list(self.observation_space.shape), "dtype": str(self.observation_space.dtype),
                          "low": float(self.observation_space.low.min()),
                          "high": float(self.observation_space.high.max())},
            "policy": self.policy.state_dict(),
            "config": to_dict(self.cfg),
            # what it trained with: eval, record and export follow it unless told otherwise
            "runtime": {"device": self.runtime.device, "precision": self.runtime.precision,
                        "torch_threads": self.runtime.torch_threads},
        }
        progress = None
        if resumable:
            progress = {
                "task": tasks_done if tasks_done < len(self.games) else None,
                "in_task": self._env_game == tasks_done,  # stopped inside task `tasks_done`
                **self.model.progress_state(),
                "rng": get_rng_state(),
            }
        return {"state": state, "progress": progress}

    def restore(self, payload: dict[str, Any], method: ContinualMethod) -> None:
        """Load a checkpoint's policy, method state and counters; a resumable checkpoint taken
        inside a game also restores its optimizer and RNG state when that game begins again."""
        state = payload["state"]
        from blip_rl.errors import UserError

        kept = bool((state.get("extractor_kwargs") or {}).get("layer_norm", False))
        if kept != bool(self.cfg.layer_norm):
            raise UserError(f"the checkpoint's trunk was trained {'with' if kept else 'without'} layer_norm, this "
                            f"run's config has layer_norm: {str(bool(self.cfg.layer_norm)).lower()}; the network "
                            "would compute something else: use the checkpoint's own config")
        while self.policy.n_heads < len(state["n_actions"]):
            self.policy.add_head(state["n_actions"][self.policy.n_heads])
        self.policy.load_state_dict(state["policy"])
        method.load_state_dict(payload["method"]["state"])
        self.model.num_timesteps = int(payload["global_step"])
        progress = payload.get("progress")
        if progress is not None and progress.get("in_task"):
            self._resume = progress

    @property
    def grad_norm(self) -> float | None:
        """Mean gradient norm (before clipping) over the last update's minibatch steps, or None
        before the first update."""
        value = getattr(self.model, "last_grad_norm", None)
        return None if value is None or value != value else float(value)

    def mirror_scalars(self, scalar: Callable[[str, float, int], None]) -> None:
        """Also send SB3's own scalars (``train/*``, ``rollout/*``, ``time/fps``) to ``scalar(key,
        value, step)`` (a W&B mirror), with the step TensorBoard gets."""
        from stable_baselines3.common.logger import KVWriter

        class Forward(KVWriter):
            def write(self, key_values, key_excluded, step=0):  # noqa: ARG002 (SB3's signature)
                for key, value in key_values.items():
                    if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
                        scalar(key, float(value), int(step))

        self.model.logger.output_formats.append(Forward())

    def close(self) -> None:
        self.env.close()




#: The name of before MinAtar and Gymnasium tasks.
AtariLearner = PPOLearner
