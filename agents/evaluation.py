"""Evaluation of one task (any environment family) with one head of a multi-head policy (training's
and ``blip-rl eval``'s)."""
from __future__ import annotations

from typing import Callable

import torch

from blip_rl.config import TrainConfig
from blip_rl.core import ContinualMethod
from blip_rl.envs.family import Episodes, family_of, play_episodes

from .policies import MultiHeadPolicy

__all__ = ["evaluate_game"]


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
    episodes = episodes or ev.episodes
    n_envs = min(ev.n_envs or min(episodes, 64), episodes)
    family = family_of(game)
    gen = torch.Generator(device=policy.device).manual_seed(seed)
    if method is not None:
        method.before_eval(head + 1)
    try:
        with policy.weight_cast_cache():
            env = family.make_vec_env(game, n_envs=n_envs, seed=seed + ev.seed_offset, training=False, env_cfg=cfg.env,
                                      num_threads=min(num_threads, n_envs), max_episode_steps=ev.max_episode_steps)
            return play_episodes(env, lambda obs: policy.act(obs, head, deterministic=ev.deterministic, generator=gen),
                                 episodes=episodes, on_episode=on_episode, on_step=on_step)
    finally:
        if method is not None:
            method.after_eval(head + 1)
