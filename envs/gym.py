"""Any Gymnasium environment as a task: ``gym:ENV_ID`` (the ``gym`` family).

``ENV_ID`` is anything ``gymnasium.make`` accepts, including its ``module:EnvName-v0`` form (the
module is imported first, so it may register the env). The env needs a ``Discrete`` action space
and a ``Box`` observation space: images, height x width x channels or channels x height x width
(given to the trunk channel-first), or flat vectors (given as float32). The task's ``name``
(files, tags, tables) is a safe slug of the id, ``gym-<id>``; its ``spec`` is what was typed.

Training and evaluation envs are the same (no reward shaping): SB3's ``DummyVecEnv`` over
``Monitor``-ed copies, env ``i`` seeded ``seed + i`` at its first reset.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from blip_rl.errors import UserError

from .family import EnvFamily, register_family, safe_name

__all__ = ["GymTask", "GymFamily", "PREFIX"]

PREFIX = "gym:"
#: an axis of at most this many entries, next to two larger ones, is read as the channel axis
_MAX_CHANNELS = 16


@dataclass(frozen=True)
class GymTask:
    """One Gymnasium env id as a task.

    :param env_id: what ``gymnasium.make`` gets.
    :param layout: ``"chw"``, ``"hwc"`` (transposed to channel-first) or ``"vector"``.
    :param obs_shape: the shape the trunk sees (channel-first for images).
    """

    name: str
    spec: str
    title: str
    env_id: str
    n_actions: int
    layout: str
    obs_shape: tuple[int, ...]
    obs_low: float
    obs_high: float
    obs_dtype: str

    family: ClassVar[str] = "gym"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _layout(shape: tuple[int, ...]) -> str | None:
    if len(shape) == 1:
        return "vector"
    if len(shape) == 3:
        if shape[0] <= _MAX_CHANNELS < min(shape[1], shape[2]) or (shape[0] <= _MAX_CHANNELS and shape[2] > _MAX_CHANNELS):
            return "chw"
        if shape[2] <= _MAX_CHANNELS:
            return "hwc"
        return "chw"
    return None


def _bound(values: np.ndarray, pick) -> float:
    finite = values[np.isfinite(values)]
    return float(pick(finite)) if finite.size == values.size else (float("-inf") if pick is np.min else float("inf"))


def inspect_env(spec: str) -> GymTask:
    """Make the env once to read its spaces. :raises UserError: it does not make, or its spaces
    are not supported (the message says which are)."""
    import gymnasium as gym

    env_id = spec.strip()[len(PREFIX):].strip()
    if not env_id:
        raise UserError("give an env id after 'gym:', e.g. gym:CartPole-v1 or gym:mypackage.envs:Grid-v0")
    try:
        env = gym.make(env_id)
    except Exception as exc:
        raise UserError(f"gym:{env_id}: gymnasium.make failed: {_one_line(exc)}") from None
    try:
        act, obs = env.action_space, env.observation_space
    finally:
        env.close()
    if not isinstance(act, gym.spaces.Discrete):
        raise UserError(f"gym:{env_id} has a {type(act).__name__} action space; blip-rl's agents take Discrete "
                        f"actions only")
    if not isinstance(obs, gym.spaces.Box):
        raise UserError(f"gym:{env_id} has a {type(obs).__name__} observation space; supported: a Box of images "
                        f"(HxWxC or CxHxW) or a flat vector")
    layout = _layout(tuple(obs.shape))
    if layout is None:
        raise UserError(f"gym:{env_id}: observations of shape {tuple(obs.shape)} are not supported; give images "
                        f"(HxWxC or CxHxW) or a flat vector")
    shape = tuple(int(s) for s in obs.shape)
    if layout == "hwc":
        shape = (shape[2], shape[0], shape[1])
    dtype = "uint8" if (layout != "vector" and obs.dtype == np.uint8) else "float32"
    return GymTask(name=safe_name(f"gym-{env_id}"), spec=f"{PREFIX}{env_id}", title=env_id, env_id=env_id,
                   n_actions=int(act.n), layout=layout, obs_shape=shape, obs_low=_bound(np.asarray(obs.low), np.min),
                   obs_high=_bound(np.asarray(obs.high), np.max), obs_dtype=dtype)


def _space(task: GymTask):
    from gymnasium import spaces

    dtype = np.uint8 if task.obs_dtype == "uint8" else np.float32
    return spaces.Box(task.obs_low, task.obs_high, task.obs_shape, dtype)


def _wrap(task: GymTask, env):
    """``env``'s observations as the trunk sees them (channel-first images, float32 vectors)."""
    import gymnasium as gym

    space = _space(task)
    if task.layout == "hwc":
        return gym.wrappers.TransformObservation(env, lambda o: np.ascontiguousarray(np.moveaxis(o, 2, 0)), space)
    if task.obs_dtype == "float32" and env.observation_space.dtype != np.float32:
        return gym.wrappers.TransformObservation(env, lambda o: np.asarray(o, np.float32), space)
    return env


def make_gym_vec_env(task: GymTask, *, n_envs: int, seed: int, max_episode_steps: int | None = None,
                     render: bool = False):
    import gymnasium as gym
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    kwargs = {"max_episode_steps": int(max_episode_steps)} if max_episode_steps else {}
    if render:
        kwargs["render_mode"] = "rgb_array"

    def make():
        return Monitor(_wrap(task, gym.make(task.env_id, **kwargs)))

    venv = DummyVecEnv([make] * n_envs)
    venv.seed(seed)
    return venv


class GymFamily(EnvFamily):
    name = "gym"
    description = "any Gymnasium env with Discrete actions and Box observations: gym:ENV_ID"
    example = "gym:CartPole-v1"

    def owns(self, spec: str) -> bool:
        return spec.strip().lower().startswith(PREFIX)

    def get(self, spec: str) -> GymTask:
        return inspect_env(spec)

    def name_of(self, spec: str) -> str:
        return safe_name(f"gym-{spec.strip()[len(PREFIX):].strip()}")

    def observation_space(self, task: GymTask, env_cfg):
        return _space(task)

    def make_vec_env(self, task: GymTask, *, n_envs: int, seed: int, training: bool, env_cfg, num_threads: int = 0,
                     max_episode_steps: int | None = None):
        return make_gym_vec_env(task, n_envs=n_envs, seed=seed, max_episode_steps=max_episode_steps)

    def rgb_frame(self, env, obs: np.ndarray) -> np.ndarray:
        frame = np.asarray(obs)[0]
        if frame.ndim == 3:  # channel-first image
            img = np.moveaxis(frame, 0, 2)
            if img.dtype != np.uint8:
                lo, hi = float(img.min()), float(img.max())
                img = ((img - lo) / (hi - lo or 1.0) * 255).astype(np.uint8)
            if img.shape[2] == 1:
                img = np.repeat(img, 3, axis=2)
            elif img.shape[2] != 3:
                img = np.repeat(img[..., -1:], 3, axis=2)  # the newest channel of a stack
            scale = max(1, 240 // max(img.shape[0], img.shape[1]))
            return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)
        images = env.get_images()
        if not images or images[0] is None:
            raise UserError("this env's observations are vectors and it draws no rgb_array frame; record needs one")
        return np.asarray(images[0], np.uint8)

    def model_card(self, task: GymTask, ev: dict) -> dict:
        module = task.env_id.partition(":")[0] if ":" in task.env_id else None
        lines = ["import gymnasium as gym", "import numpy as np",
                 "from stable_baselines3.common.env_util import make_vec_env", ""]
        if task.layout == "hwc":
            lines += [f"space = gym.spaces.Box(0, 255, {task.obs_shape}, np.uint8)",
                      "wrap = lambda e: gym.wrappers.TransformObservation(e, lambda o: np.ascontiguousarray("
                      "np.moveaxis(o, 2, 0)), space)"]
        elif task.obs_dtype == "float32":
            lines += [f"space = gym.spaces.Box({task.obs_low}, {task.obs_high}, {task.obs_shape}, np.float32)",
                      "wrap = lambda e: gym.wrappers.TransformObservation(e, lambda o: np.asarray(o, np.float32), "
                      "space)"]
        else:
            lines += ["wrap = None"]
        lines += [f"env = make_vec_env({task.env_id!r}, n_envs={ev['n_envs']}, seed={ev['seed']}, wrapper_class=wrap, "
                  f"env_kwargs={{'max_episode_steps': {ev['max_episode_steps']}}})"
                  + (f"  # gymnasium imports {module!r} first" if module else "")]
        obs = f"{task.layout} observations of shape {task.obs_shape} ({task.obs_dtype})"
        return {"code": "\n".join(lines).replace("inf", "float('inf')") + "\n", "observations": obs,
                "notes": [f"observations: {obs}" + (" (HxWxC given channel-first by the wrapper below)"
                                                      if task.layout == "hwc" else ""),
                          f"actions: `Discrete({task.n_actions})`",
                          f"`gymnasium.make({task.env_id!r})` with no other wrapper; games cut after "
                          f"{ev['max_episode_steps']:,} agent steps in evaluation"]}

    def describe(self, task: GymTask) -> dict:
        return {"name": task.name, "title": task.title, "actions": task.n_actions, "random": None, "human": None,
                "ppo": None}


GYM = register_family(GymFamily())
