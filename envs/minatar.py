"""MinAtar (Young & Tian 2019): five miniature Atari games on a 10x10 grid, as one family.

Tasks ``minatar-asterix``, ``minatar-breakout``, ``minatar-freeway``, ``minatar-seaquest``,
``minatar-spaceinvaders`` (also ``MinAtar/Breakout-v1``, MinAtar's own Gymnasium ids). Every
game's observation is zero-padded to 10 channels, channel-first ``Box(0, 1, (10, 10, 10), uint8)``,
so that one trunk serves a sequence (as C-CHAIN, ICML 2025, does); one head per game, sized to
its minimal action set (MinAtar's ``-v1`` ids). MinAtar's own defaults: sticky actions 0.1 and
difficulty ramping (config ``env.minatar``).

The vector env (:func:`make_minatar_vec_env`) steps the games of ``n_envs`` envs in one loop and writes their states
into one preallocated batch: the Python around the games is the whole per-step cost (they step at
45,000-330,000 steps/s each). Each env is seeded ``seed + i`` once and its game and sticky
actions draw from one ``RandomState``, as ``minatar.Environment.seed`` does; episodes then
continue on that stream, so an env is reproducible from its seed.

Reference scores (``normalization: ppo``): single-task PPO of this project at the budget of
``configs/minatar3.yaml`` (see :data:`REFERENCE_SOURCE`); random scores: a uniformly random
policy over the minimal action set, 1,000 games each (:data:`RANDOM_SOURCE`). There are no
human scores.
"""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from blip_rl.errors import UserError

from .family import EnvFamily, register_family

__all__ = ["MinAtarGame", "MINATAR_GAMES", "make_minatar_vec_env", "MinAtarSettings", "MinAtarFamily", "CHANNELS", "GRID"]

#: channels every observation is padded to (Seaquest has 10)
CHANNELS = 10
#: the grid's side
GRID = 10
#: cells drawn this many pixels wide by ``record``
CELL_PIXELS = 24


@dataclass(frozen=True)
class MinAtarGame:
    """One MinAtar game.

    :param name: ``minatar-<game>``: command line, files, tags.
    :param title: e.g. ``"MinAtar Breakout"``.
    :param module: MinAtar's module name (``minatar.environments.<module>``).
    :param gym_id: MinAtar's Gymnasium id with the minimal action set.
    :param actions: the minimal action set (MinAtar's action numbers), the head's actions in order.
    :param channels: the game's own channels (padded to :data:`CHANNELS`).
    :param random_score: mean score of a uniformly random policy over ``actions``.
    :param ppo_score: single-task PPO of this project at the reference budget (see module doc).
    """

    name: str
    title: str
    module: str
    gym_id: str
    actions: tuple[int, ...]
    channels: int
    random_score: float | None = None
    ppo_score: float | None = None

    family: ClassVar[str] = "minatar"

    @property
    def spec(self) -> str:
        return self.name

    @property
    def n_actions(self) -> int:
        return len(self.actions)


#: How the random scores were measured (command, machine).
RANDOM_SOURCE = ("uniform random minimal-action policy, sticky 0.1, ramping, 1,000 games per game, seed 0: "
                 "python benchmarks/minatar_scores.py --random (2026-12-01, 2-core Intel Xeon)")
#: How the reference (ppo) scores were measured.
REFERENCE_SOURCE = ("single-task PPO of blip-rl (method ft, one game per run), configs/minatar3.yaml's budget "
                    "(500k env steps) and settings, final evaluation (10 games, sampled actions), mean of 3 seeds: "
                    "python benchmarks/minatar_scores.py --ppo --config configs/minatar3.yaml --seeds 1,2,3 "
                    "(2026-12-01, 2-core Intel Xeon; benchmarks/results/minatar_reference_ppo.json)")

# name, module, gym id, minimal action set, channels, random score, ppo score
_TABLE: tuple[tuple[str, str, str, tuple[int, ...], int, float | None, float | None], ...] = (
    ("asterix", "asterix", "MinAtar/Asterix-v1", (0, 1, 2, 3, 4), 4, 0.52, 1.0),
    ("breakout", "breakout", "MinAtar/Breakout-v1", (0, 1, 3), 4, 0.37, 5.4),
    ("freeway", "freeway", "MinAtar/Freeway-v1", (0, 2, 4), 7, 0.392, 27.17),
    ("seaquest", "seaquest", "MinAtar/Seaquest-v1", (0, 1, 2, 3, 4, 5), 10, 0.11, 1.43),
    ("spaceinvaders", "space_invaders", "MinAtar/SpaceInvaders-v1", (0, 1, 3, 5), 6, 4.217, 23.23),
)

MINATAR_GAMES: tuple[MinAtarGame, ...] = tuple(
    MinAtarGame(name=f"minatar-{n}", title=f"MinAtar {n.replace('spaceinvaders', 'Space Invaders').title()}",
                module=m, gym_id=g, actions=a, channels=c, random_score=r, ppo_score=p)
    for n, m, g, a, c, r, p in _TABLE)
_BY_KEY = {}
for _g in MINATAR_GAMES:
    for _k in (_g.name, _g.name.removeprefix("minatar-"), _g.module, _g.gym_id, _g.gym_id.removesuffix("-v1"),
               f"minatar:{_g.name.removeprefix('minatar-')}", f"minatar:{_g.module}"):
        _BY_KEY[_k.lower().replace("_", "")] = _g


def _key(spec: str) -> str:
    return spec.strip().lower().replace("_", "").replace(" ", "")


def get_minatar_game(spec: str) -> MinAtarGame:
    game = _BY_KEY.get(_key(spec))
    if game is None:
        raise UserError(f"unknown MinAtar game {spec!r}; there are: {', '.join(g.name for g in MINATAR_GAMES)}")
    return game


def _game_module(game: MinAtarGame):
    try:
        return importlib.import_module(f"minatar.environments.{game.module}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "minatar":
            from blip_rl.errors import require

            require("minatar", purpose="the MinAtar games", package="minatar")
        raise


@dataclass(frozen=True)
class MinAtarSettings:
    """How MinAtar is played (config ``env.minatar``; MinAtar's own defaults)."""

    sticky_action_prob: float = 0.1
    difficulty_ramping: bool = True
    #: agent steps after which a game is cut (MinAtar has no limit of its own; a good Breakout
    #: agent never loses)
    max_episode_steps: int = 10_000

    @classmethod
    def of(cls, env_cfg) -> "MinAtarSettings":
        section = getattr(env_cfg, "minatar", None)
        if section is None:
            return cls()
        return cls(**{k: getattr(section, k) for k in ("sticky_action_prob", "difficulty_ramping",
                                                       "max_episode_steps") if hasattr(section, k)})


def make_minatar_vec_env(game: MinAtarGame, *, n_envs: int, seed: int, settings: MinAtarSettings,
                         max_episode_steps: int | None = None):
    """``n_envs`` copies of one MinAtar game as an SB3 ``VecEnv`` (SB3 is imported here, not at
    module import)."""
    from gymnasium import spaces
    from stable_baselines3.common.vec_env import VecEnv

    module = _game_module(game)
    limit = int(max_episode_steps or settings.max_episode_steps)
    if n_envs < 1:
        raise UserError(f"n_envs must be at least 1, got {n_envs}")

    class _MinAtarVecEnv(VecEnv):
        def __init__(self) -> None:
            self.render_mode = None
            super().__init__(n_envs, spaces.Box(0, 1, (CHANNELS, GRID, GRID), np.uint8),
                             spaces.Discrete(game.n_actions))
            self.game = game
            self._actions = np.asarray(game.actions, dtype=np.int64)
            self._envs = []
            self._rngs = []
            for i in range(n_envs):
                env = module.Env(ramping=settings.difficulty_ramping)
                rng = np.random.RandomState((seed + i) % 2**32)
                env.random = rng  # the first reset() starts the first game (as minatar.Environment.seed)
                self._envs.append(env)
                self._rngs.append(rng)
            self._sticky = float(settings.sticky_action_prob)
            self._last = np.zeros(n_envs, dtype=np.int64)
            self._obs = np.zeros((n_envs, CHANNELS, GRID, GRID), np.uint8)
            self._ret = np.zeros(n_envs)
            self._len = np.zeros(n_envs, dtype=np.int64)
            self._pending: np.ndarray | None = None
            self._t0 = time.time()
            self.closed = False

        def _write(self, i: int) -> None:
            state = self._envs[i].state()  # (10, 10, C) bool
            self._obs[i, : state.shape[2]] = state.transpose(2, 0, 1)

        def reset(self):
            for i, env in enumerate(self._envs):
                env.reset()  # the last action stays, as minatar.Environment.reset leaves it
                self._obs[i] = 0
                self._write(i)
            self._ret[:] = 0
            self._len[:] = 0
            return self._obs.copy()

        def step_async(self, actions) -> None:
            self._pending = np.asarray(actions).reshape(n_envs)

        def step_wait(self):
            acts = self._actions[self._pending]
            rewards = np.zeros(n_envs, dtype=np.float32)
            dones = np.zeros(n_envs, dtype=bool)
            infos: list[dict[str, Any]] = [{} for _ in range(n_envs)]
            for i, env in enumerate(self._envs):
                a = int(acts[i])
                if self._rngs[i].rand() < self._sticky:  # minatar.Environment.act's sticky action
                    a = int(self._last[i])
                self._last[i] = a
                r, terminal = env.act(a)
                self._ret[i] += r
                self._len[i] += 1
                rewards[i] = r
                truncated = not terminal and self._len[i] >= limit
                self._write(i)
                if terminal or truncated:
                    dones[i] = True
                    infos[i] = {"terminal_observation": self._obs[i].copy(), "TimeLimit.truncated": bool(truncated),
                                "episode": {"r": float(self._ret[i]), "l": int(self._len[i]),
                                            "t": round(time.time() - self._t0, 6)}}
                    env.reset()
                    self._ret[i] = 0
                    self._len[i] = 0
                    self._obs[i] = 0
                    self._write(i)
            return self._obs.copy(), rewards, dones, infos

        def close(self) -> None:
            self.closed = True

        def get_attr(self, attr_name, indices=None):
            return [getattr(self, attr_name)] * len(self._indices(indices))

        def set_attr(self, attr_name, value, indices=None) -> None:
            setattr(self, attr_name, value)

        def env_method(self, method_name, *args, indices=None, **kwargs):
            raise AttributeError(f"MinAtar vector envs have no per-env method {method_name!r}")

        def env_is_wrapped(self, wrapper_class, indices=None):
            return [False] * len(self._indices(indices))

        def _indices(self, indices):
            if indices is None:
                return list(range(n_envs))
            return [indices] if isinstance(indices, int) else list(indices)

        def seed(self, seed=None):
            return [None] * n_envs

        def get_images(self):
            return [_grid_rgb(self._obs[i]) for i in range(n_envs)]

        def __repr__(self) -> str:
            return f"MinAtarVecEnv({game.name}, n_envs={n_envs})"

    return _MinAtarVecEnv()


# One colour per channel (channel 0 first), on black; the last channel drawn wins, as in
# MinAtar's own display.
_PALETTE = np.array([[0, 0, 0], [230, 80, 60], [250, 200, 60], [80, 200, 90], [70, 140, 240], [200, 90, 220],
                     [240, 240, 240], [120, 220, 220], [250, 140, 40], [150, 150, 150], [180, 120, 70]], np.uint8)


def _grid_rgb(obs: np.ndarray, cell: int = CELL_PIXELS) -> np.ndarray:
    """An RGB picture of one (10, 10, 10) observation, ``cell`` pixels per cell."""
    weights = (np.arange(obs.shape[0]) + 1).reshape(-1, 1, 1)
    index = (obs.astype(np.int64) * weights).max(axis=0)
    rgb = _PALETTE[index]
    return np.repeat(np.repeat(rgb, cell, axis=0), cell, axis=1)


_CARD_CODE = '''import gymnasium as gym
import numpy as np
from minatar.gym import register_envs
from stable_baselines3.common.env_util import make_vec_env

register_envs()  # MinAtar's Gymnasium ids (MinAtar/<Game>-v1: the minimal action set)


class PaddedChannelFirst(gym.ObservationWrapper):
    """MinAtar's (10, 10, C) bool grid as blip-rl's trunk saw it: channel-first, 10 channels, uint8."""

    def __init__(self, env):
        super().__init__(env)
        self.observation_space = gym.spaces.Box(0, 1, ({channels}, 10, 10), np.uint8)

    def observation(self, obs):
        out = np.zeros(({channels}, 10, 10), np.uint8)
        out[: obs.shape[2]] = np.moveaxis(obs, 2, 0)
        return out


env = make_vec_env("{gym_id}", n_envs={n_envs}, seed={seed}, wrapper_class=PaddedChannelFirst,
                   env_kwargs={{"sticky_action_prob": {sticky}, "difficulty_ramping": {ramping},
                               "max_episode_steps": {limit}}})  # gymnasium's TimeLimit
'''


class MinAtarFamily(EnvFamily):
    name = "minatar"
    description = "MinAtar's five games (Young & Tian 2019), 10x10 grids padded to 10 channels"
    example = "minatar-breakout"

    def owns(self, spec: str) -> bool:
        key = spec.strip().lower()
        return key.startswith(("minatar-", "minatar:", "minatar/"))

    def get(self, spec: str) -> MinAtarGame:
        return get_minatar_game(spec)

    def tasks(self) -> list[MinAtarGame]:
        return list(MINATAR_GAMES)

    def observation_space(self, task, env_cfg):
        from gymnasium import spaces

        return spaces.Box(0, 1, (CHANNELS, GRID, GRID), np.uint8)

    def make_vec_env(self, task, *, n_envs: int, seed: int, training: bool, env_cfg, num_threads: int = 0,
                     max_episode_steps: int | None = None):
        return make_minatar_vec_env(task, n_envs=n_envs, seed=seed, settings=MinAtarSettings.of(env_cfg),
                                    max_episode_steps=max_episode_steps)

    def reference(self, task: MinAtarGame, normalization: str):
        if normalization != "ppo" or task.random_score is None or task.ppo_score is None:
            return None
        return (task.random_score, task.ppo_score)

    def rgb_frame(self, env, obs: np.ndarray) -> np.ndarray:
        return _grid_rgb(np.asarray(obs)[0])

    def card_settings(self, task: MinAtarGame, env_cfg) -> dict[str, Any]:
        s = MinAtarSettings.of(env_cfg)
        return {"sticky_action_prob": s.sticky_action_prob, "difficulty_ramping": s.difficulty_ramping,
                "train_max_episode_steps": s.max_episode_steps}

    def model_card(self, task: MinAtarGame, ev: dict[str, Any]) -> dict[str, Any]:
        code = _CARD_CODE.format(channels=CHANNELS, gym_id=task.gym_id, sticky=ev["sticky_action_prob"],
                                 ramping=ev["difficulty_ramping"], n_envs=ev["n_envs"], seed=ev["seed"],
                                 limit=ev["max_episode_steps"])
        obs = f"MinAtar's 10x10 grid, channel-first, padded to {CHANNELS} channels: `Box(0, 1, ({CHANNELS}, 10, 10), uint8)`"
        return {"code": code, "observations": obs, "notes": [
            f"observations: {obs} (the `PaddedChannelFirst` wrapper below)",
            f"actions: `Discrete({task.n_actions})`, the game's minimal action set (MinAtar's `-v1` ids)",
            f"sticky actions {ev['sticky_action_prob']}, difficulty ramping {ev['difficulty_ramping']} "
            "(MinAtar's own defaults unless the run set them)",
            f"games cut after {ev['max_episode_steps']:,} agent steps in evaluation (training: "
            f"{ev['train_max_episode_steps']:,})",
            "blip-rl steps MinAtar's game modules itself with the same random stream per env as "
            "`minatar.Environment` (game and sticky actions from one seeded RandomState)"]}

    def describe(self, task: MinAtarGame) -> dict:
        return {"name": task.name, "title": task.title, "actions": task.n_actions, "random": task.random_score,
                "human": None, "ppo": task.ppo_score}


MINATAR = register_family(MinAtarFamily())
