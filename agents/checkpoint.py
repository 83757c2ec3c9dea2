"""Atari checkpoints: the policy and its continual method rebuilt from one.

The format is the shared one (:mod:`blip_rl.continual.checkpoint`, learner ``"atari-ppo"``);
its ``state`` holds the games' heads (``n_actions``), the trunk's constructor options
(``extractor_kwargs``), ``frame_stack``, the policy's weights and the run's config.
Checkpoints of blip-rl before that format (``blip-rl/atari-ppo`` version 1) are upgraded on
read. ``eval``, ``record``, ``report`` and ``--resume`` read them here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from blip_rl.continual.checkpoint import FORMAT, VERSION, CheckpointError
from blip_rl.continual.checkpoint import read_checkpoint as _read
from blip_rl.core import ContinualMethod, MethodError, make_method

from .policies import MultiHeadPolicy

__all__ = ["LEARNER", "CheckpointError", "read_checkpoint", "load_checkpoint", "load_method", "checkpoint_obs_space",
           "checkpoint_family", "checkpoint_task"]

#: The ``learner`` entry of Atari checkpoints.
LEARNER = "atari-ppo"
#: The format of blip-rl 0.1's Atari checkpoints (version 1), read by :func:`_upgrade_v1`.
_V1_FORMAT = "blip-rl/atari-ppo"


def _upgrade_v1(old: dict[str, Any]) -> dict[str, Any]:
    """A version-1 Atari checkpoint in this version's layout."""
    if old.get("version") != 1:
        raise CheckpointError(f"this is an Atari checkpoint of version {old.get('version')}; this blip-rl reads "
                              f"version {VERSION} and upgrades version 1; use a blip-rl of that version")
    spec = old.get("method_spec")
    if spec is None:  # before the method registry: the method and its options come from the config
        from blip_rl.config import TrainConfig, merge, upgrade_keys

        method = str(old["config"].get("method", "blip"))
        cfg = merge(TrainConfig(), upgrade_keys({k: v for k, v in old["config"].items()
                                                 if k in ("method", "blip", "ewc", "method_options", "methods")},
                                                method=method))
        spec = {"spec": cfg.method, "options": cfg.method_kwargs()}
    return {
        "format": FORMAT, "version": VERSION, "blip_rl_version": old.get("blip_rl_version"), "learner": LEARNER,
        "tasks": list(old["config"]["games"]), "tasks_done": old["tasks_done"], "global_step": old["global_step"],
        "method": {"name": old["method"]["name"], **spec, "state": old["method"]},
        "results": None,
        "state": {k: old[k] for k in ("n_actions", "extractor_kwargs", "frame_stack", "policy", "config")},
        "progress": old.get("progress"), "saved_at": old.get("saved_at"),
    }


def read_checkpoint(path: str | Path, *, device: str = "cpu") -> dict[str, Any]:
    """The payload of an Atari checkpoint, validated (version 1 upgraded).

    :raises CheckpointError: missing, truncated or corrupt file, or one of another format, version
        or learner.
    """
    return _read(path, learner=LEARNER, device=device, upgrade={_V1_FORMAT: _upgrade_v1})


def load_method(payload: dict[str, Any], policy: MultiHeadPolicy) -> ContinualMethod:
    """Rebuild a checkpoint's continual method on ``policy``'s trunk, with its options and state.

    :raises CheckpointError: the method cannot be imported or rebuilt here.
    """
    entry = payload["method"]
    try:
        method = make_method(entry["spec"], policy.trunk, **entry["options"])
        method.load_state_dict(entry["state"])
    except MethodError as exc:
        raise CheckpointError(f"cannot rebuild the method of this checkpoint: {exc}") from None
    return method


def checkpoint_obs_space(state: dict[str, Any]) -> spaces.Box:
    """The observation space the checkpoint's trunk was built for (Atari checkpoints of before
    the environment families hold only ``frame_stack``: 84x84 frames)."""
    obs = state.get("obs_space")
    if obs is None:
        return spaces.Box(0, 255, (int(state["frame_stack"]), 84, 84), np.uint8)
    dtype = np.dtype(obs["dtype"])
    return spaces.Box(float(obs["low"]), float(obs["high"]), tuple(obs["shape"]), dtype)


def checkpoint_family(payload: dict[str, Any]) -> str:
    """The environment family a checkpoint's tasks belong to (``atari`` before families)."""
    return payload["state"].get("family", "atari")


def load_checkpoint(path: str | Path, *, device: str = "cpu") -> tuple[MultiHeadPolicy, dict[str, Any]]:
    """Rebuild the policy from a checkpoint alone; returns ``(policy, payload)``.

    :raises CheckpointError: see :func:`read_checkpoint`, or a network this version cannot build.
    """
    payload = read_checkpoint(path, device=device)
    state = payload["state"]
    policy = MultiHeadPolicy(checkpoint_obs_space(state), spaces.Discrete(state["n_actions"][0]), lambda _: 0.0,
                             extractor_kwargs=state["extractor_kwargs"])
    for n in state["n_actions"][1:]:
        policy.add_head(n)
    try:
        policy.load_state_dict(state["policy"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path} holds a network this blip-rl cannot rebuild: {exc}") from None
    policy.to(device)
    policy.set_training_mode(False)
    return policy, payload


def checkpoint_task(checkpoint: str | Path, name: str):
    """The task ``name`` of an RL checkpoint, its head and the tasks it has learned, checked
    before anything is built: a task of another family, or one it has not learned, is one line."""
    from blip_rl.envs.family import family_of, get_task

    payload = read_checkpoint(checkpoint)
    learned = payload["tasks"][: payload["tasks_done"]]
    specs = list(payload["state"].get("config", {}).get("games") or payload["tasks"])
    if name in learned and len(specs) == len(payload["tasks"]):
        name = specs[learned.index(name)]  # a task's file-safe name: its spelling in the run
    family = checkpoint_family(payload)
    asked = family_of(name)
    if asked.name != family:
        raise CheckpointError(f"{checkpoint} learned {family} tasks ({', '.join(learned) or 'none yet'}); {name!r} "
                              f"is of the {asked.name} family: give one of the tasks it learned")
    task = get_task(name)
    if task.name not in learned:
        from blip_rl.continual.checkpoint import not_learned

        raise not_learned(checkpoint, task.name, learned)
    return task, learned.index(task.name), learned
