"""The Atari checkpoint: its format, and rebuilding a policy and its continual method from it.

``AtariLearner.save`` writes it; ``eval``, ``record``, ``report`` and ``--resume`` read it here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

import blip_rl
from blip_rl.core import ContinualMethod, MethodError, make_method
from blip_rl.errors import UserError

from .policies import MultiHeadPolicy

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "CheckpointError", "read_checkpoint", "load_checkpoint",
           "load_method"]

CHECKPOINT_FORMAT = "blip-rl/atari-ppo"
CHECKPOINT_VERSION = 1


class CheckpointError(UserError):
    """A checkpoint cannot be used; the message says why and what to do."""


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
