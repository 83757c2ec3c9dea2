"""Evaluation of one game with one head of a multi-head policy (training's and ``blip-rl eval``'s)."""
from __future__ import annotations

from typing import Callable

import torch

from blip_rl.config import TrainConfig
from blip_rl.core import ContinualMethod
from blip_rl.envs import AtariSettings, Episodes, evaluate_episodes

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
    gen = torch.Generator(device=policy.device).manual_seed(seed)
    if method is not None:
        method.before_eval(head + 1)
    try:
        with policy.weight_cast_cache():
            return evaluate_episodes(
                lambda obs: policy.act(obs, head, deterministic=ev.deterministic, generator=gen), game,
                episodes=episodes or ev.episodes, seed=seed + ev.seed_offset, n_envs=ev.n_envs,
                settings=AtariSettings.of(cfg.env).replace(max_episode_steps=ev.max_episode_steps),
                num_threads=num_threads, on_episode=on_episode, on_step=on_step)
    finally:
        if method is not None:
            method.after_eval(head + 1)
