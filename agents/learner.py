"""The Atari learner: ContinualPPO on one game after another, behind the scheduler's protocol.

It owns the env of the current game, the multi-head policy and the PPO loop; the scheduler
(:mod:`blip_rl.continual.scheduler`) tells it which game to learn, asks for Fisher inputs and
evaluations, and saves checkpoints through it.
"""
from __future__ import annotations

from blip_rl.errors import UserError

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure

import blip_rl
from blip_rl.config import TrainConfig, to_dict
from blip_rl.core import ContinualMethod, FisherData, MethodError, make_method, method_spec
from blip_rl.continual import Evaluation
from blip_rl.envs import Episodes, evaluate_episodes, make_vec_env, normalize_score, parse_games
from blip_rl.system import Runtime, resolve_runtime
from blip_rl.io import atomic_torch_save

from .policies import MultiHeadPolicy
from .ppo import ContinualPPO

__all__ = ["AtariLearner", "CHECKPOINT_FORMAT", "load_checkpoint", "load_method", "read_checkpoint", "CheckpointError",
           "evaluate_game"]

CHECKPOINT_FORMAT = "blip-rl/atari-ppo"
CHECKPOINT_VERSION = 1


class CheckpointError(UserError):
    """A checkpoint cannot be used; the message says why and what to do."""


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


def _obs_space(cfg: TrainConfig) -> spaces.Box:
    return spaces.Box(0, 255, (cfg.env.frame_stack, 84, 84), np.uint8)


def _extractor_kwargs(cfg: TrainConfig, device: torch.device, *, bf16: bool) -> dict[str, Any]:
    # channels-last convolutions: faster in fp32 on CPU (1.1-2.6x per layer here) and on CUDA
    # tensor cores; under bf16 autocast on CPU the plain layout is about as fast (README, Speed).
    channels_last = device.type == "cuda" or not bf16
    return {"features_dim": cfg.features_dim, "quantized": True, "max_bits": cfg.blip.max_bits,
            "f_prior": cfg.blip.f_prior, "channels_last": channels_last}


class AtariLearner:
    """Continual PPO over the games of ``cfg.games`` (see :class:`blip_rl.config.TrainConfig`).

    :param cfg: the resolved run configuration.
    :param runtime: device, precision and threads chosen for this machine
        (:func:`blip_rl.system.resolve_runtime`); by default resolved from ``cfg``.
    :param tb_dir: where SB3 writes its training scalars (``train/*``, ``rollout/*``, ``time/*``),
        or ``None`` for no logging.
    :param purge_step: on resume, the checkpoint's global step (TensorBoard's purge_step).
    """

    def __init__(self, cfg: TrainConfig, *, runtime: Runtime | None = None, tb_dir: Path | None = None,
                 purge_step: int | None = None) -> None:
        self.cfg = cfg
        self.games = parse_games(cfg.games)
        self.task_names = [g.name for g in self.games]
        self.runtime = runtime or resolve_runtime(device=cfg.device, precision=cfg.precision, threads=cfg.threads,
                                                  n_envs=cfg.env.n_envs)
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
            batch_size=ppo.n_steps * cfg.env.n_envs // ppo.n_minibatches,
            n_epochs=ppo.n_epochs,
            gamma=ppo.gamma,
            gae_lambda=ppo.gae_lambda,
            clip_range=ppo.clip_range,
            ent_coef=ppo.ent_coef,
            vf_coef=ppo.vf_coef,
            max_grad_norm=ppo.max_grad_norm,
            policy_kwargs={"extractor_kwargs": _extractor_kwargs(cfg, self.device, bf16=self.bf16),
                           "optimizer_kwargs": {"eps": ppo.adam_eps, "fused": ppo.fused_adam}},
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

    # -- the scheduler's protocol ----------------------------------------------------------------
    @property
    def global_step(self) -> int:
        return int(self.model.num_timesteps)

    def _make_env(self, k: int):
        e = self.cfg.env
        return make_vec_env(self.games[k], n_envs=e.n_envs, seed=self.cfg.seed + 1000 * k, training=True,
                            backend=e.backend, frame_stack=e.frame_stack, frameskip=e.frameskip,
                            noop_max=e.noop_max, repeat_action_probability=e.repeat_action_probability,
                            max_episode_steps=e.max_episode_steps, num_threads=self.runtime.env_threads)

    def begin_task(self, k: int, method: ContinualMethod) -> None:
        if self._env_game != k:
            self.env.close()
            self.env = self._make_env(k)
            self._env_game = k
        while self.policy.n_heads <= k:
            self.policy.add_head(self.games[self.policy.n_heads].n_actions)
        self.model.method = method
        self.model.start_game(self.env, k, self.cfg.steps_per_game, adam_eps=self.cfg.ppo.adam_eps)
        if self._resume is not None and self._resume["task"] == k:
            progress, self._resume = self._resume, None
            self.model.policy.optimizer.load_state_dict(progress["optimizer"])
            self.model._game_start = progress["game_start"]
            self.model._n_updates = progress["n_updates"]
            _set_rng_state(progress["rng"])

    def learn(self, k: int, budget: int, on_update: Callable[[int], None],
              should_stop: Callable[[], bool] | None = None) -> bool:
        """PPO on game k until ``budget`` env steps of it are done; False if stopped early."""
        left = self.model._game_start + budget - self.global_step
        if left <= 0:
            return True
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

    def fisher_data(self, k: int) -> FisherData:
        """States from the policy's own last rollout on game k (``cfg.fisher_samples`` of them)."""
        # After an update SB3 has flattened the buffer to (n_steps * n_envs, *obs_shape).
        obs = self.model.rollout_buffer.observations
        obs = obs.reshape(-1, *self.policy.observation_space.shape)
        rng = np.random.default_rng(self.cfg.seed + k)
        if len(obs) > self.cfg.fisher_samples:
            obs = obs[np.sort(rng.choice(len(obs), self.cfg.fisher_samples, replace=False))]
        inputs = torch.as_tensor(obs, device=self.device)
        gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed + k)
        self.policy.set_training_mode(False)
        return FisherData(inputs, lambda x: self.policy.head_logits(x, k, exact=True),
                          batch_size=self.cfg.fisher_batch_size, generator=gen)

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
        return normalize_score(self.games[k], score)

    def save(self, path: Path, method: ContinualMethod, *, tasks_done: int, resumable: bool = False) -> None:
        payload = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "blip_rl_version": blip_rl.__version__,
            "games": self.task_names[: self.policy.n_heads],
            "n_actions": [h.out_features for h in self.policy.action_heads],
            "tasks_done": tasks_done,
            "global_step": self.global_step,
            "extractor_kwargs": _extractor_kwargs(self.cfg, self.device, bf16=self.bf16),
            "frame_stack": self.cfg.env.frame_stack,
            "policy": self.policy.state_dict(),
            "method": method.state_dict(),
            # spec and options, so that eval and record rebuild the method as it was trained
            "method_spec": {k: v for k, v in method_spec(method).items() if k != "state"},
            "config": to_dict(self.cfg),
            "saved_at": time.time(),
        }
        if resumable:
            payload["progress"] = {
                "task": tasks_done if tasks_done < len(self.games) else None,
                "in_task": self._env_game == tasks_done,  # stopped inside task `tasks_done`
                "optimizer": self.model.policy.optimizer.state_dict(),
                "game_start": self.model._game_start,
                "n_updates": self.model._n_updates,
                "rng": _get_rng_state(),
            }
        atomic_torch_save(payload, path)

    def restore(self, payload: dict[str, Any], method: ContinualMethod) -> None:
        """Load a checkpoint's policy, method state and counters; a resumable checkpoint taken
        inside a game also restores its optimizer and RNG state when that game begins again."""
        while self.policy.n_heads < len(payload["n_actions"]):
            self.policy.add_head(payload["n_actions"][self.policy.n_heads])
        self.policy.load_state_dict(payload["policy"])
        method.load_state_dict(payload["method"])
        self.model.num_timesteps = int(payload["global_step"])
        progress = payload.get("progress")
        if progress is not None and progress.get("in_task"):
            self._resume = progress

    def close(self) -> None:
        self.env.close()


def _get_rng_state() -> dict[str, Any]:
    import random

    # Plain lists and ints, so that checkpoints load with torch.load(weights_only=True).
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": [name, keys.tolist(), pos, has_gauss, gauss],
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import random

    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def evaluate_game(policy: MultiHeadPolicy, head: int, game, cfg: TrainConfig, *, seed: int,
                  episodes: int | None = None, method: ContinualMethod | None = None,
                  on_episode: Callable[[int, int], None] | None = None,
                  on_step: Callable[[int], None] | None = None, num_threads: int = 0) -> Episodes:
    """Play ``episodes`` (default ``cfg.eval.episodes``) full games of ``game`` with head ``head``.

    The games run at once on one vector env (``cfg.eval.n_envs`` copies; 0: one per game), one
    batched forward per step. Actions are greedy when ``cfg.eval.deterministic`` (the paper),
    else sampled from the policy with a generator seeded from ``seed`` so that evaluations are
    reproducible. ``on_episode(done, total)`` is called as games end, ``on_step(steps)``
    every 100 steps. The games are played between ``method.before_eval(head + 1)`` and
    ``method.after_eval(head + 1)`` (e.g. a method's mask for that task).
    """
    ev = cfg.eval
    gen = torch.Generator(device=policy.device).manual_seed(seed)
    if method is not None:
        method.before_eval(head + 1)
    try:
        with policy.weight_cast_cache():
            return evaluate_episodes(
            lambda obs: policy.act(obs, head, deterministic=ev.deterministic, generator=gen), game,
            episodes=episodes or ev.episodes, seed=seed + ev.seed_offset, n_envs=ev.n_envs,
            max_episode_steps=ev.max_episode_steps, backend=cfg.env.backend, num_threads=num_threads,
            on_episode=on_episode, on_step=on_step, frame_stack=cfg.env.frame_stack, frameskip=cfg.env.frameskip,
            noop_max=cfg.env.noop_max, repeat_action_probability=cfg.env.repeat_action_probability)
    finally:
        if method is not None:
            method.after_eval(head + 1)


def read_checkpoint(path: str | Path, *, device: str = "cpu") -> dict[str, Any]:
    """The payload of a checkpoint, validated.

    :raises CheckpointError: missing, truncated or corrupt file, or one of another format/version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (look in RUN_DIR/checkpoints/)")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/corrupt zips
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}: {exc}); "
                              "use another one from the same run dir") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a blip-rl Atari checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} has checkpoint version {payload.get('version')}; this blip-rl "
                              f"({blip_rl.__version__}) reads version {CHECKPOINT_VERSION}")
    return payload


def load_method(payload: dict[str, Any], policy: MultiHeadPolicy) -> ContinualMethod:
    """Rebuild a checkpoint's continual method on ``policy``'s trunk, with its options and state.

    Checkpoints written before the method registry have no ``method_spec``: the method and its
    options come from the run's config, which they hold.

    :raises CheckpointError: the method cannot be imported or rebuilt here.
    """
    spec = payload.get("method_spec")
    if spec is None:
        from blip_rl.config import TrainConfig, merge

        cfg = merge(TrainConfig(), {k: v for k, v in payload["config"].items()
                                    if k in ("method", "blip", "ewc", "method_options")})
        spec = {"spec": cfg.method, "options": cfg.method_kwargs()}
    try:
        method = make_method(spec["spec"], policy.trunk, **spec["options"])
        method.load_state_dict(payload["method"])
    except MethodError as exc:
        raise CheckpointError(f"cannot rebuild the method of this checkpoint: {exc}") from None
    return method


def load_checkpoint(path: str | Path, *, device: str = "cpu") -> tuple[MultiHeadPolicy, dict[str, Any]]:
    """Rebuild the policy from a checkpoint alone; returns ``(policy, metadata)``.

    :raises CheckpointError: see :func:`read_checkpoint`, or a network this version cannot build.
    """
    payload = read_checkpoint(path, device=device)
    obs_space = spaces.Box(0, 255, (payload["frame_stack"], 84, 84), np.uint8)
    policy = MultiHeadPolicy(obs_space, spaces.Discrete(payload["n_actions"][0]), lambda _: 0.0,
                             extractor_kwargs=payload["extractor_kwargs"])
    for n in payload["n_actions"][1:]:
        policy.add_head(n)
    try:
        policy.load_state_dict(payload["policy"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path} holds a network this blip-rl cannot rebuild: {exc}") from None
    policy.to(device)
    policy.set_training_mode(False)
    return policy, payload
