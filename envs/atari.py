"""Vectorised Atari environments behind stable-baselines3's ``VecEnv`` API.

:func:`make_vec_env` gives ``n_envs`` copies of one game with the DeepMind / baselines
preprocessing the BLIP authors used (NoFrameskip-v4 + ``wrap_deepmind``-style wrappers): up to
``noop_max`` no-op frames and FIRE on reset, the action repeated for ``frameskip`` frames with a
max over the last two, 84x84 grayscale, ``frame_stack`` frames stacked channel-first, minimal
action set. Two backends give the same spaces and the same ``info`` conventions:

* ``"ale"`` (default): ale-py's native ``AtariVectorEnv`` (C++ worker threads), wrapped by
  :class:`AtariVecEnv`.
* ``"sb3"``: SB3's ``make_atari_env`` (``AtariWrapper`` on each env in a ``DummyVecEnv``) +
  ``VecFrameStack`` + ``VecTransposeImage``; a reference to check the native backend against.

A :class:`~blip_rl.envs.games.Game` with a ``mode`` / ``difficulty`` (e.g. ``"spaceinvaders:mode=4"``)
is played in that mode: the ``"sb3"`` backend passes them to ``gym.make``. ale-py's native
``AtariVectorEnv`` (ale-py 0.12) has no mode or difficulty argument, so with ``backend="ale"`` such
a game is played by the ``"sb3"`` backend instead, with a :class:`BackendFallbackWarning` (a
variant in its default mode and difficulty plays the same game and stays on ``"ale"``).

Training envs (``training=True``) end an episode for learning at each life loss and clip rewards
to their sign; evaluation envs (``training=False``) play full games with raw rewards. In both
modes the raw, unclipped score of each full game (all lives, until game over or
``max_episode_steps`` agent steps) is reported as ``infos[i]["episode"] = {"r", "l", "t"}`` at
the step where the game ends, the same key SB3's ``Monitor`` writes, so SB3's ``ep_info_buffer``
and ``evaluate_policy`` see real game scores; with episodic life there is no ``"episode"`` key at
a mere life loss. On every done, ``infos[i]["terminal_observation"]`` holds the last observation
and the returned observation is already the next episode's first (SB3's same-step autoreset);
``infos[i]["TimeLimit.truncated"]`` is True when the game was cut by the step limit.
"""
from __future__ import annotations

from blip_rl.errors import UserError

import time
import warnings
from collections.abc import Callable, Sequence
import dataclasses
from dataclasses import dataclass, fields
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from .family import Episodes, play_episodes
from .games import Game, _task_key, get_game

__all__ = ["AtariVecEnv", "AtariSettings", "BACKENDS", "BackendFallbackWarning", "Episodes", "make_vec_env",
           "evaluate_episodes", "evaluate_policy", "needs_mode_backend"]

#: Names accepted by ``make_vec_env(backend=...)``.
BACKENDS = ("ale", "sb3")

IMAGE_SIZE = 84
_MAX_SEED = 2**31 - 1  # ALE's random_seed is a C int


class BackendFallbackWarning(UserWarning):
    """A game's mode / difficulty made :func:`make_vec_env` use the ``"sb3"`` backend instead of ``"ale"``."""


def needs_mode_backend(game: Game) -> bool:
    """True when ``game`` plays a mode or difficulty other than its ROM's default, which ale-py's
    native ``AtariVectorEnv`` cannot set (only the ``"sb3"`` backend can)."""
    return _task_key(game)[1:] != (None, None)


def _check_int(name: str, value: Any, minimum: int, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise UserError(f"{name} must be an integer >= {minimum}, got {value!r}{hint}")
    return int(value)


def _check_seed(seed: Any, n_envs: int) -> int:
    seed = _check_int("seed", seed, 0)
    if seed + n_envs > _MAX_SEED:
        raise UserError(
            f"seed must be at most {_MAX_SEED - n_envs} so that every env's seed (seed + i) fits "
            f"ALE's 32-bit seed; got {seed}"
        )
    return seed


class AtariVecEnv(VecEnv):
    """SB3 ``VecEnv`` over ale-py's native, multi-threaded ``AtariVectorEnv``.

    Build it with :func:`make_vec_env` (``backend="ale"``). The native env runs with same-step
    autoreset, ``episodic_life=False`` (ale-py's ``episodic_life`` *restarts the whole game* at
    each life loss), ``life_loss_info=training`` (terminated on a life loss, the game going on)
    and ``reward_clipping=False``: this wrapper clips rewards itself when training so that it can
    add the raw rewards up into the game score.

    Small differences from the ``"sb3"`` backend's baselines wrappers: after a life loss the game
    simply goes on (no no-op step, no FIRE press, frame stack kept; SB3's ``VecFrameStack``
    zeroes it at every done), FIRE is pressed once at reset (baselines: FIRE then UP), and
    frames are turned gray with ALE's palette rather than OpenCV's RGB->gray.

    The sub-envs are C++ objects, not Python envs: ``get_attr`` / ``set_attr`` / ``env_method``
    act on this wrapper (one value shared by all envs), ``env_is_wrapped(Monitor)`` is True
    (this class writes Monitor's ``"episode"`` infos itself) and rendering is not supported.
    ``step_async`` really is asynchronous: the worker threads step while Python goes on until
    ``step_wait``.
    """

    render_mode = None

    def __init__(
        self,
        game: Game,
        *,
        n_envs: int,
        seed: int,
        training: bool = True,
        frame_stack: int = 4,
        frameskip: int = 4,
        noop_max: int = 30,
        repeat_action_probability: float = 0.0,
        max_episode_steps: int = 27000,
        num_threads: int = 0,
    ) -> None:
        from ale_py.vector_env import AtariVectorEnv
        from gymnasium.vector import AutoresetMode

        if needs_mode_backend(game):
            raise UserError(
                f"{game.title}: ale-py's native vector env cannot set a game mode or difficulty; "
                "use the 'sb3' backend (env.backend: sb3, or make_vec_env(..., backend='sb3'))"
            )
        self.game = game
        self.training = bool(training)
        self.backend = "ale"
        self.max_episode_steps = max_episode_steps
        self._venv = AtariVectorEnv(
            game.rom,
            n_envs,
            num_threads=num_threads,
            # The C++ env counts emulated frames since reset (no-op reset frames excluded).
            max_num_frames_per_episode=max_episode_steps * frameskip,
            repeat_action_probability=repeat_action_probability,
            full_action_space=False,
            autoreset_mode=AutoresetMode.SAME_STEP,
            img_height=IMAGE_SIZE,
            img_width=IMAGE_SIZE,
            grayscale=True,
            stack_num=frame_stack,
            frameskip=frameskip,
            maxpool=True,
            noop_max=noop_max,
            episodic_life=False,
            life_loss_info=self.training,
            reward_clipping=False,
            use_fire_reset=True,
        )
        n_actions = int(self._venv.single_action_space.n)
        if n_actions != game.n_actions:
            self._venv.close()
            raise RuntimeError(
                f"{game.title}: ale-py gives {n_actions} minimal actions but the registry says "
                f"{game.n_actions}; fix envs/games.py for this ale-py version"
            )
        super().__init__(
            n_envs,
            spaces.Box(0, 255, (frame_stack, IMAGE_SIZE, IMAGE_SIZE), np.uint8),
            spaces.Discrete(n_actions),
        )
        self._pending = False
        self._needs_reset = True
        self._t_start = time.time()
        self._returns = np.zeros(n_envs, dtype=np.float64)
        self._lengths = np.zeros(n_envs, dtype=np.int64)
        self._frame = np.zeros(n_envs, dtype=np.int64)
        self._episode_frame = np.zeros(n_envs, dtype=np.int64)
        self.seed(seed)

    # ----------------------------------------------------------------------------- stepping
    def reset(self) -> VecEnvObs:
        """Start a new game in every env (seeded by the last :meth:`seed` call, if any)."""
        self._check_open()
        if self._pending:  # drop the results of a step nobody waited for
            self._venv.recv()
            self._pending = False
        if all(s is None for s in self._seeds):
            seeds = None
        else:
            seeds = np.array([-1 if s is None else s for s in self._seeds], dtype=np.int64)
        obs, info = self._venv.reset(seed=seeds)
        self._frame[:] = info["frame_number"]
        self._episode_frame[:] = info["episode_frame_number"]
        self._returns[:] = 0.0
        self._lengths[:] = 0
        self.reset_infos = [{"lives": int(lives)} for lives in info["lives"]]
        self._reset_seeds()
        self._reset_options()
        self._needs_reset = False
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._check_open()
        if self._needs_reset:
            raise RuntimeError("call reset() before stepping the env")
        if self._pending:
            raise RuntimeError("step_async() called twice without step_wait() in between")
        acts = np.asarray(actions)
        if acts.size != self.num_envs or not np.issubdtype(acts.dtype, np.integer):
            raise ValueError(
                f"give one integer action per env: expected {self.num_envs} ints, got "
                f"shape {acts.shape} dtype {acts.dtype}"
            )
        acts = acts.reshape(self.num_envs).astype(np.int32)
        if acts.min() < 0 or acts.max() >= self.action_space.n:
            raise ValueError(f"actions must lie in [0, {self.action_space.n}), got {acts.tolist()}")
        self._venv.send(acts)
        self._pending = True

    def step_wait(self) -> VecEnvStepReturn:
        self._check_open()
        if not self._pending:
            raise RuntimeError("step_wait() called without step_async()")
        obs, reward, terminated, truncated, info = self._venv.recv()
        self._pending = False

        raw = reward.astype(np.float64)
        self._returns += raw
        self._lengths += 1
        frame = info["frame_number"].astype(np.int64)
        episode_frame = info["episode_frame_number"].astype(np.int64)
        # Did the env restart its game in this step? Without a restart the env-lifetime and the
        # episode frame counters advance together; a restart zeroes the episode counter. This
        # tells a real game over / time limit apart from a life loss (both set `terminated`).
        restarted = (frame - self._frame) != (episode_frame - self._episode_frame)
        self._frame, self._episode_frame = frame, episode_frame
        dones = terminated | truncated | restarted

        rewards = (np.sign(raw) if self.training else raw).astype(np.float32)
        infos: list[dict[str, Any]] = [{"lives": int(lives)} for lives in info["lives"]]
        if dones.any():
            final_obs = info.get("final_obs")
            now = round(time.time() - self._t_start, 6)
            for i in np.flatnonzero(dones):
                # At a life loss the game goes on, so the observation returned is the terminal
                # one; `final_obs` is only written when the native env restarted the game.
                last = final_obs[i] if restarted[i] else obs[i]
                infos[i]["terminal_observation"] = np.array(last, copy=True)
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                if restarted[i]:
                    infos[i]["episode"] = {"r": float(self._returns[i]), "l": int(self._lengths[i]), "t": now}
                    self._returns[i] = 0.0
                    self._lengths[i] = 0
        return obs, rewards, dones, infos

    # ----------------------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Stop the worker threads (idempotent)."""
        venv = self.__dict__.pop("_venv", None)
        if venv is None:
            return
        if self._pending:
            venv.recv()
            self._pending = False
        venv.close()
        # The C++ vectoriser joins its threads when destroyed; the Python close() alone does not.
        del venv

    @property
    def closed(self) -> bool:
        return "_venv" not in self.__dict__

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("this env is closed; make a new one with make_vec_env()")

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seed env ``i`` with ``seed + i`` at the next :meth:`reset` (random if ``None``)."""
        if seed is None:
            seed = int(np.random.randint(0, _MAX_SEED - self.num_envs))
        seed = _check_seed(seed, self.num_envs)
        self._seeds = [seed + i for i in range(self.num_envs)]
        return self._seeds

    # ----------------------------------------------------------------------------- SB3 plumbing
    def _indices(self, indices: VecEnvIndices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, (int, np.integer)):
            return [int(indices)]
        return [int(i) for i in indices]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if sorted(self._indices(indices)) != list(range(self.num_envs)):
            raise ValueError("the native ALE backend shares attributes across envs; set them for all envs")
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        method = getattr(self, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        wrapped = isinstance(wrapper_class, type) and issubclass(Monitor, wrapper_class)
        return [wrapped for _ in self._indices(indices)]

    def get_action_meanings(self) -> list[str]:
        """Names of the minimal action set, e.g. ``["NOOP", "FIRE", ...]``."""
        self._check_open()
        return [a.name.removeprefix("PLAYER_A_") for a in self._venv.ale.get_action_set()]

    def get_images(self) -> Sequence[np.ndarray | None]:
        raise NotImplementedError("the native ALE backend has no RGB frames; use backend='sb3' to render")

    def __repr__(self) -> str:
        mode = "training" if self.training else "evaluation"
        return f"AtariVecEnv({self.game.name!r}, n_envs={self.num_envs}, {mode})"


class _AgentStepEpisodeLength(VecEnvWrapper):
    """Rewrites ``info["episode"]["l"]`` in agent steps.

    In ``make_atari_env`` the ``Monitor`` sits below ``AtariWrapper`` (so its ``"r"`` is the raw
    game score) and therefore counts emulator frames, not agent steps.
    """

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)

    def reset(self) -> VecEnvObs:
        self._lengths[:] = 0
        return self.venv.reset()

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        self._lengths += 1
        for i, info in enumerate(infos):
            if "episode" in info:
                info["episode"] = dict(info["episode"], l=int(self._lengths[i]))
                self._lengths[i] = 0
        return obs, rewards, dones, infos


def _make_sb3_vec_env(
    game: Game,
    *,
    n_envs: int,
    seed: int,
    training: bool,
    frame_stack: int,
    frameskip: int,
    noop_max: int,
    repeat_action_probability: float,
    max_episode_steps: int,
) -> VecEnv:
    import ale_py
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack, VecTransposeImage

    from blip_rl.errors import require

    # SB3's AtariWrapper resizes and grays frames with OpenCV (an install requirement; checked for
    # an environment that lost it)
    require("cv2", extra=None, package="opencv-python-headless", purpose="env.backend sb3 (or use the default ale)")
    gym.register_envs(ale_py)
    env_kwargs: dict[str, Any] = dict(
        frameskip=1,  # AtariWrapper repeats each action `frameskip` times, max-pooling the last two
        repeat_action_probability=repeat_action_probability,
        full_action_space=False,
        # ALE counts every emulated frame of the episode, the no-op/FIRE reset frames included.
        max_num_frames_per_episode=max_episode_steps * frameskip,
    )
    if game.mode is not None:
        env_kwargs["mode"] = game.mode  # ale_py.env.AtariEnv: ale.setMode after loading the ROM
    if game.difficulty is not None:
        env_kwargs["difficulty"] = game.difficulty
    venv = make_atari_env(
        game.gym_id,
        n_envs=n_envs,
        seed=seed,
        env_kwargs=env_kwargs,
        wrapper_kwargs=dict(
            noop_max=noop_max,
            frame_skip=frameskip,
            screen_size=IMAGE_SIZE,
            terminal_on_life_loss=training,
            clip_reward=training,
        ),
    )
    venv = VecFrameStack(venv, n_stack=frame_stack)
    venv = VecTransposeImage(venv)
    return _AgentStepEpisodeLength(venv)


@dataclass(frozen=True)
class AtariSettings:
    """How every env of a run plays and preprocesses a game: one value, passed whole.

    The fields are those of a config's ``env:`` section (:meth:`of` reads them from it).
    """

    #: ``"ale"`` (ale-py's native C++ vector env) or ``"sb3"`` (``make_atari_env`` + ``VecFrameStack``
    #: + ``VecTransposeImage``, a reference to check the native one against).
    backend: str = "ale"
    #: frames stacked channel-first in each observation
    frame_stack: int = 4
    #: emulator frames per agent step (action repeat, max over the last two frames)
    frameskip: int = 4
    #: at most this many no-op frames at the start of each game
    noop_max: int = 30
    #: ALE sticky-action probability (0 as in the paper's NoFrameskip-v4 envs)
    repeat_action_probability: float = 0.0
    #: a game is cut after this many agent steps (27000 = 108k frames = 30 min). The ``"sb3"``
    #: backend counts ALE frames including the few no-op/FIRE frames at reset, so it may cut a
    #: few steps earlier.
    max_episode_steps: int = 27000

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise UserError(f"unknown backend {self.backend!r}; use one of {', '.join(map(repr, BACKENDS))}")
        _check_int("frame_stack", self.frame_stack, 1)
        _check_int("frameskip", self.frameskip, 1)
        _check_int("noop_max", self.noop_max, 0)
        _check_int("max_episode_steps", self.max_episode_steps, 1)
        if not 0.0 <= float(self.repeat_action_probability) <= 1.0:
            raise UserError(f"repeat_action_probability must lie in [0, 1], got {self.repeat_action_probability!r}")

    @classmethod
    def of(cls, source: Any) -> "AtariSettings":
        """The settings held by ``source`` (e.g. a config's ``env`` section), by attribute name."""
        return cls(**{f.name: getattr(source, f.name) for f in fields(cls)})

    def replace(self, **changes: Any) -> "AtariSettings":
        """A copy with ``changes`` (field names only)."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(f"AtariSettings has no field(s) {unknown}")
        return dataclasses.replace(self, **changes)


def make_vec_env(
    game: Game | str,
    *,
    n_envs: int,
    seed: int,
    training: bool = True,
    settings: AtariSettings | None = None,
    num_threads: int = 0,
    **changes: Any,
) -> VecEnv:
    """Make ``n_envs`` preprocessed copies of an Atari game as an SB3 ``VecEnv``.

    Args:
        game: a :class:`~blip_rl.envs.games.Game` or any name ``get_game`` accepts, with its
            mode / difficulty if it has one (``"spaceinvaders:mode=4"``). The ``"ale"`` backend
            cannot set a mode: such a game is played by ``"sb3"``, with a
            :class:`BackendFallbackWarning`.
        n_envs: number of parallel envs (>= 1).
        seed: env ``i`` is seeded with ``seed + i`` at the first ``reset()``; give evaluation envs
            seeds of their own.
        training: True: a life loss ends the episode for learning (``done``, the game going on)
            and rewards are clipped to {-1, 0, 1}; False: full games and raw rewards. Either way
            ``infos[i]["episode"]["r"]`` is the raw score of each full game.
        settings: how the game is played and preprocessed (default :class:`AtariSettings`()).
        num_threads: worker threads of the ``"ale"`` backend; 0 = min(n_envs, CPU cores).
            Ignored by ``"sb3"``.
        changes: fields of ``settings`` to change for this env (e.g. ``max_episode_steps=80``).

    Returns:
        A ``VecEnv`` with ``observation_space == Box(0, 255, (frame_stack, 84, 84), uint8)`` and
        ``action_space == Discrete(game.n_actions)`` (minimal action set). Close it when done.

    Raises:
        UserError: a bad argument (the message says what to give instead).
    """
    game = game if isinstance(game, Game) else get_game(game)
    n_envs = _check_int("n_envs", n_envs, 1, " (the number of parallel envs)")
    seed = _check_seed(seed, n_envs)
    settings = (settings or AtariSettings()).replace(**changes)
    num_threads = _check_int("num_threads", num_threads, 0, " (0 picks min(n_envs, CPU cores))")
    kwargs = {f.name: getattr(settings, f.name) for f in fields(settings) if f.name != "backend"}
    kwargs.update(n_envs=n_envs, seed=seed, training=bool(training))
    if settings.backend == "ale" and needs_mode_backend(game):
        warnings.warn(
            f"{game.title}: ale-py's native vector env cannot set a game mode or difficulty, so this "
            "game is played with the 'sb3' backend (set env.backend: sb3 to give every game of a run "
            "the same backend)",
            BackendFallbackWarning,
            stacklevel=2,
        )
    elif settings.backend == "ale":
        return AtariVecEnv(game, num_threads=num_threads, **kwargs)
    return _make_sb3_vec_env(game, **kwargs)


def evaluate_episodes(
    act_fn: Callable[[np.ndarray], Any],
    game: Game | str,
    *,
    episodes: int,
    seed: int,
    n_envs: int | None = None,
    settings: AtariSettings | None = None,
    num_threads: int = 0,
    on_episode: Callable[[int, int], None] | None = None,
    on_step: Callable[[int], None] | None = None,
    **changes: Any,
) -> Episodes:
    """Play ``episodes`` full games of ``game`` with ``act_fn``, in parallel, and return them.

    All games run at once on one vector env of ``n_envs`` copies (default: one per game, up to
    64), so ``act_fn`` sees one batch of observations per step. ``settings`` (with ``changes``,
    e.g. ``max_episode_steps``) go to :func:`make_vec_env`: give the ones the policy was trained
    with.

    Uses an evaluation env (``training=False``: full games, raw rewards), env ``i`` seeded
    ``seed + i``. ``act_fn`` maps the uint8 observation batch ``(n_envs, 4, 84, 84)`` to one
    integer action per env. With fewer envs than games, env ``i`` plays a fixed quota of
    ``(episodes + i) // n_envs`` games (as in SB3's ``evaluate_policy``, so that short games
    are not favoured); games an env finishes beyond its quota are ignored. Deterministic for a
    fixed ``seed`` and a deterministic ``act_fn``.

    :param on_episode: called with ``(games done, episodes)`` each time a game ends.
    :param on_step: called every 100 steps of the vector env with the steps so far (the
        longest game's length), so that a progress display moves while games are long.
    :param num_threads: worker threads of the ``"ale"`` backend (0: min(n_envs, cores)).
    """
    episodes = _check_int("episodes", episodes, 1, " (the number of games to play)")
    if n_envs is None or n_envs == 0:
        n_envs = min(episodes, 64)
    n_envs = min(_check_int("n_envs", n_envs, 1), episodes)
    env = make_vec_env(game, n_envs=n_envs, seed=seed, training=False, settings=settings,
                       num_threads=min(num_threads, n_envs), **changes)
    return play_episodes(env, act_fn, episodes=episodes, on_episode=on_episode, on_step=on_step)


def evaluate_policy(act_fn: Callable[[np.ndarray], Any], game: Game | str, *, episodes: int,
                    n_envs: int | None = None, **kwargs: Any) -> list[float]:
    """Raw scores of :func:`evaluate_episodes` (same arguments), in the order the games finished.

    ``n_envs`` defaults to ``min(episodes, 8)`` here, as before :func:`evaluate_episodes`.
    """
    n_envs = min(episodes, 8) if n_envs is None else n_envs
    return evaluate_episodes(act_fn, game, episodes=episodes, n_envs=n_envs, **kwargs).scores


# -- record: the RGB screen beside the agent's observations ----------------------------------------
# blip-rl record (blip_rl/record.py) plays with the evaluation env and draws these screens; see
# AtariFamily.screens.
class _LockstepScreen:
    """RGB screens of a second native ALE env stepped with the agent's actions (backend "ale")."""

    def __init__(self, game, env_cfg, seed: int) -> None:
        from ale_py.vector_env import AtariVectorEnv
        from gymnasium.vector import AutoresetMode

        # The same settings as blip_rl.envs.AtariVecEnv(training=False); only the image differs.
        self._venv = AtariVectorEnv(
            game.rom, 1, num_threads=1,
            max_num_frames_per_episode=env_cfg.max_episode_steps * env_cfg.frameskip,
            repeat_action_probability=env_cfg.repeat_action_probability, full_action_space=False,
            autoreset_mode=AutoresetMode.SAME_STEP, img_height=210, img_width=160, grayscale=False,
            stack_num=1, frameskip=env_cfg.frameskip, maxpool=False, noop_max=env_cfg.noop_max,
            episodic_life=False, life_loss_info=False, reward_clipping=False, use_fire_reset=True,
        )
        self._seed = seed

    def reset(self, obs=None) -> np.ndarray:
        obs, _ = self._venv.reset(seed=np.array([self._seed], dtype=np.int64))
        return np.array(obs[0, -1])

    def step(self, action: np.ndarray, step: int, reward: float, done: bool, info: dict, obs=None) -> np.ndarray:
        """The screen after ``action``; ``reward``, ``done``, ``info`` are the agent env's for the
        same step, checked against this env's."""
        obs, rew, terminated, truncated, rinfo = self._venv.step(np.asarray(action, dtype=np.int32).reshape(1))
        ended = bool(terminated[0] or truncated[0])
        if float(rew[0]) != reward or int(rinfo["lives"][0]) != info.get("lives") or ended != done:
            raise RuntimeError(
                f"the RGB emulator fell out of step with the agent's at step {step} (reward {float(rew[0])} vs "
                f"{reward}, lives {int(rinfo['lives'][0])} vs {info.get('lives')}, game over {ended} vs {done}); "
                "this is a bug in blip-rl record: please report it with the command line")
        return np.array(rinfo["final_obs"][0, -1] if ended else obs[0, -1])

    def close(self) -> None:
        self._venv.close()


class _SameEmulatorScreen:
    """RGB screens of the emulator behind the agent's observations (backend "sb3")."""

    def __init__(self, env) -> None:
        import gymnasium as gym

        class ScreenAfterStep(gym.Wrapper):
            # DummyVecEnv resets a finished game inside its step: keep the screen from before.
            def step(self, action):
                out = self.env.step(action)
                self.screen = self.env.unwrapped.ale.getScreenRGB()
                return out

        dummy = env.unwrapped
        self._wrapper = dummy.envs[0] = ScreenAfterStep(dummy.envs[0])

    def reset(self, obs=None) -> np.ndarray:
        return np.array(self._wrapper.unwrapped.ale.getScreenRGB())

    def step(self, action: np.ndarray, step: int, reward: float, done: bool, info: dict, obs=None) -> np.ndarray:
        return np.array(self._wrapper.screen)

    def close(self) -> None:
        pass


def atari_screens(game: Game, env_cfg, seed: int, env):
    """The RGB screens of ``game`` as ``env`` (an evaluation env of :func:`make_vec_env`) plays it:
    backend "ale": a second native env stepped in lockstep; "sb3" (and game modes, which it plays):
    the emulator behind the observations."""
    native = env_cfg.backend == "ale" and not needs_mode_backend(game)
    return _LockstepScreen(game, env_cfg, seed) if native else _SameEmulatorScreen(env)
