"""Environment families: one interface, one registry (as continual methods have).

A *family* is everything blip-rl needs to know about one kind of environment: how its task names
parse, the vector envs for training and evaluation, the observation and action spaces, random and
reference scores for normalization, how a frame is drawn for ``record``, and the env code an
export's model card gives SB3 users. ``train``, ``eval``, ``resume``, ``sweep``, ``report``,
``record``, ``export``, ``games`` and the checkpoint reader ask the family of a task; none of
them tests for Atari.

Built in: ``atari`` (:mod:`.games`, :mod:`.atari`), ``minatar`` (:mod:`.minatar`) and ``gym``
(:mod:`.gym`: any Gymnasium id as ``gym:ENV_ID``). A family defined elsewhere registers itself
with :func:`register_family` when its module is imported; name that module in the environment
variable ``BLIP_RL_FAMILIES`` (comma-separated) or in the ``blip_rl.families`` entry-point group
of its package, and every command finds it.

A *task* is any object with ``name`` (safe for file names and TensorBoard tags, unique in a run),
``spec`` (what parses back to the task), ``title``, ``family`` (the family's name) and
``n_actions`` (its ``Discrete`` action space); families add their own fields.
"""
from __future__ import annotations

import abc
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from blip_rl.errors import UserError

__all__ = ["Task", "EnvFamily", "Episodes", "register_family", "families", "get_family", "family_of",
           "get_task", "parse_tasks", "task_names", "play_episodes", "safe_name", "NORMALIZATIONS", "check_normalization",
           "FAMILIES_ENV"]

#: Environment variable naming modules (comma-separated) that register families when imported.
FAMILIES_ENV = "BLIP_RL_FAMILIES"
#: ``normalization`` values: the reference that maps to 1 ("ppo": a family's published or measured
#: agent score, "human": human scores where a family has them, "none": no normalized score).
NORMALIZATIONS = ("ppo", "human", "none")


class Task(Protocol):
    name: str
    title: str
    n_actions: int

    @property
    def spec(self) -> str: ...

    @property
    def family(self) -> str: ...


def check_normalization(normalization: str) -> str:
    if normalization not in NORMALIZATIONS:
        raise UserError(f"unknown normalization {normalization!r}; use one of "
                        f"{', '.join(repr(n) for n in NORMALIZATIONS)}")
    return normalization


def safe_name(text: str) -> str:
    """``text`` as a file-name and tag-safe slug: lower case, ``[a-z0-9._-]`` only."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.")
    return slug or "task"


class EnvFamily(abc.ABC):
    """One environment family. Subclass it, fill in the abstract methods (``owns``, ``get``,
    ``observation_space``, ``make_vec_env``; ``rgb_frame`` and ``model_card`` where ``record``
    and ``export`` should work), and :func:`register_family` an instance. Every method gets the run's ``env`` config section (``cfg.env``) where it needs
    settings; a family reads only the keys it knows (its own subsection, e.g. ``env.minatar``)."""

    #: short name: the ``family`` of its tasks, the family column of ``blip-rl games``
    name: str = ""
    #: one line for ``blip-rl games``
    description: str = ""
    #: how a user names one of its tasks, for error messages
    example: str = ""

    # -- task names ------------------------------------------------------------------------------
    @abc.abstractmethod
    def owns(self, spec: str) -> bool:
        """Whether ``spec`` names a task of this family (even a bad one: :meth:`get` then says why)."""

    @abc.abstractmethod
    def get(self, spec: str):
        """The task ``spec`` names. :raises UserError: it names none (listing what there is)."""

    def name_of(self, spec: str) -> str:
        """The ``name`` of the task ``spec`` spells, without making an env where that can be avoided
        (``report`` maps a run's ``config.yaml`` to its results this way)."""
        return self.get(spec).name

    def tasks(self) -> list:
        """The tasks ``blip-rl games`` lists (a family of open-ended ids lists none)."""
        return []

    def same_task(self, a, b) -> bool:
        """Whether two tasks play the same thing (one run names each task once)."""
        return a.name == b.name

    # -- environments ----------------------------------------------------------------------------
    @abc.abstractmethod
    def observation_space(self, task, env_cfg):
        """The ``Box`` the trunk sees (every task of a run must give the same shape)."""

    @abc.abstractmethod
    def make_vec_env(self, task, *, n_envs: int, seed: int, training: bool, env_cfg, num_threads: int = 0,
                     max_episode_steps: int | None = None):
        """``n_envs`` copies as an SB3 ``VecEnv`` with :meth:`observation_space` and
        ``Discrete(task.n_actions)``. ``infos[i]["episode"] = {"r", "l"}`` at the end of each full
        game (raw score), ``terminal_observation`` and ``TimeLimit.truncated`` on done (SB3's
        conventions). ``training`` may shape what learning sees (Atari: life loss, clipped
        rewards); ``episode`` is always the raw score."""

    # -- scores ----------------------------------------------------------------------------------
    def reference(self, task, normalization: str) -> tuple[float, float] | None:
        """``(random score, reference score)`` for ``normalization``, or ``None``."""
        return None

    def normalize(self, task, score: float, normalization: str) -> float | None:
        """``(score - random) / (reference - random)`` clipped to [0, 1], or ``None``."""
        check_normalization(normalization)
        if normalization == "none":
            return None
        ref = self.reference(task, normalization)
        if ref is None or ref[1] == ref[0]:
            return None
        value = (float(score) - ref[0]) / (ref[1] - ref[0])
        return float(min(1.0, max(0.0, value)))

    # -- record and export -----------------------------------------------------------------------
    def rgb_frame(self, env, obs: np.ndarray) -> np.ndarray:
        """An RGB frame (H, W, 3, uint8) of env 0 of ``env`` (a vector env of this family) whose
        last observation batch is ``obs``, scaled so that a person can see it."""
        raise UserError(f"the {self.name} family draws no frames, so `blip-rl record` cannot show its games")

    def screens(self, task, env_cfg, seed: int, env):
        """What ``blip-rl record`` draws while ``env`` (an evaluation env of this family, one copy)
        plays: an object with ``reset(obs) -> frame``, ``step(action, step, reward, done, info,
        obs) -> frame`` and ``close()``. By default each frame is :meth:`rgb_frame` of the
        observation (the last one of a game that just ended)."""
        return _ObservationScreens(self, env)

    def card_settings(self, task, env_cfg) -> dict[str, Any]:
        """The settings an exported model's card and metadata record for ``task`` (plain values)."""
        return {}

    def model_card(self, task, ev: dict[str, Any]) -> dict[str, Any]:
        """What an SB3 user needs to play an exported model of ``task``: ``code`` (Python that
        builds ``env``, an SB3 VecEnv of ``ev["n_envs"]`` envs seeded from ``ev["seed"]``, games
        cut at ``ev["max_episode_steps"]``, as ``blip-rl eval`` plays), ``notes`` (the card's
        bullets on the env it expects) and ``observations`` (one line). ``ev``: the evaluation
        settings and :meth:`card_settings`."""
        raise UserError(f"the {self.name} family writes no model card, so `blip-rl export` cannot export its games")

    def describe(self, task) -> dict[str, Any]:
        """Columns of ``blip-rl games`` for one task."""
        return {"name": task.name, "title": task.title, "actions": task.n_actions}


class _ObservationScreens:
    def __init__(self, family: EnvFamily, env) -> None:
        self.family, self.env = family, env

    def reset(self, obs):
        return self.family.rgb_frame(self.env, obs)

    def step(self, action, step, reward, done, info, obs):
        if done and "terminal_observation" in info:
            obs = np.asarray(info["terminal_observation"])[None]
        return self.family.rgb_frame(self.env, obs)

    def close(self) -> None:
        pass


_FAMILIES: dict[str, EnvFamily] = {}
_EXTERNAL_LOADED = False


def register_family(family: EnvFamily) -> EnvFamily:
    """Make ``family`` known to every command (a later registration of the same name replaces it)."""
    if not isinstance(family, EnvFamily) or not family.name or not re.fullmatch(r"[a-z][a-z0-9_]*", family.name):
        raise ValueError("register an EnvFamily instance with a lower-case name, e.g. 'minatar'")
    _FAMILIES[family.name] = family
    return family


def _load_builtin_and_external() -> None:
    global _EXTERNAL_LOADED
    if _EXTERNAL_LOADED:
        return
    _EXTERNAL_LOADED = True
    from . import games, gym, minatar  # noqa: F401  (each registers its family)

    modules = [m.strip() for m in os.environ.get(FAMILIES_ENV, "").split(",") if m.strip()]
    try:
        from importlib.metadata import entry_points

        modules += [ep.value.partition(":")[0] for ep in entry_points(group="blip_rl.families")]
    except Exception:  # pragma: no cover - broken metadata must not stop blip-rl
        pass
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise UserError(f"cannot import environment family module {module!r} (from ${FAMILIES_ENV} or an "
                            f"entry point): {type(exc).__name__}: {exc}") from None


def families() -> list[EnvFamily]:
    """Every registered family: the built-in ones first, then any from ``BLIP_RL_FAMILIES``."""
    _load_builtin_and_external()
    return list(_FAMILIES.values())


def get_family(name: str) -> EnvFamily:
    fams = {f.name: f for f in families()}
    if name not in fams:
        raise UserError(f"unknown environment family {name!r}; there are: {', '.join(fams)} (a family of "
                        f"your own registers itself in a module named in ${FAMILIES_ENV})")
    return fams[name]


def family_of(task_or_spec) -> EnvFamily:
    """The family of a task, or of the task a name spells. Names with another family's prefix
    (``minatar-``, ``gym:``, a registered family's ``<name>:``/``<name>-``) go to that family;
    everything else is an Atari game."""
    if not isinstance(task_or_spec, str):
        return get_family(task_or_spec.family)
    fams = families()
    for fam in fams:
        if fam.name != "atari" and fam.owns(task_or_spec):
            return fam
    return get_family("atari")


def get_task(spec):
    """The task ``spec`` names, in whichever family owns it (a task is passed through)."""
    if not isinstance(spec, str):
        return spec
    if not spec.strip():
        raise UserError("give a task name, e.g. 'kungfu' or 'minatar-breakout'")
    return family_of(spec.strip()).get(spec.strip())


def task_names(specs: Sequence[str]) -> list[str]:
    """The ``name`` of each task spelt in ``specs`` (a run's ``config.yaml`` games)."""
    return [family_of(s).name_of(s) for s in specs]


def parse_tasks(spec: str | Sequence[str], *, env_cfg=None) -> list:
    """Parse a task list (``"kungfu,boxing"``, ``"minatar-breakout,minatar-asterix"``, a list).

    :raises UserError: no task, an unknown one, one task named twice, or (with ``env_cfg``) tasks
        whose observations differ in shape (one trunk serves a run).
    """
    items = [spec] if isinstance(spec, str) else list(spec)
    names = [part.strip() for item in items for part in str(item).split(",") if part.strip()]
    if not names:
        raise UserError("give at least one game, e.g. --games kungfu,boxing or --games minatar-breakout")
    tasks: list = []
    for name in names:
        task = get_task(name)
        for other in tasks:
            if other.family == task.family and (other.name == task.name or get_family(task.family).same_task(other, task)):
                same = "" if other.name == task.name else f" (same game as {other.name!r}: default mode and difficulty)"
                raise UserError(f"game {task.name!r} is named twice (as {name!r}){same}; name each game once")
        tasks.append(task)
    if env_cfg is not None:
        shapes = {t.name: tuple(get_family(t.family).observation_space(t, env_cfg).shape) for t in tasks}
        if len(set(shapes.values())) > 1:
            listing = ", ".join(f"{n} {s}" for n, s in shapes.items())
            raise UserError(f"the tasks of one run share one trunk, so they need one observation shape; these "
                            f"differ: {listing}")
    return tasks


@dataclass
class Episodes:
    """What an evaluation played: one entry per game, in the order the games finished."""

    #: Raw game score of each game.
    scores: list[float] = field(default_factory=list)
    #: Agent steps of each game.
    lengths: list[int] = field(default_factory=list)
    #: Whether each game was cut at ``max_episode_steps`` instead of ending by itself.
    cut: list[bool] = field(default_factory=list)
    #: Env steps stepped in all (every env of the vector env, including those past their quota).
    env_steps: int = 0
    #: Wall time of the evaluation, in seconds.
    seconds: float = 0.0

    @property
    def n_cut(self) -> int:
        return int(sum(self.cut))


def play_episodes(env, act_fn: Callable[[np.ndarray], Any], *, episodes: int,
                  on_episode: Callable[[int, int], None] | None = None,
                  on_step: Callable[[int], None] | None = None) -> Episodes:
    """Play ``episodes`` full games on the vector env ``env`` (closed at the end) with ``act_fn``
    (one batch of observations in, one action per env out). Env ``i`` plays a fixed quota of
    ``(episodes + i) // n_envs`` games (as SB3's ``evaluate_policy``, so that short games are not
    favoured); games beyond its quota are ignored."""
    n_envs = env.num_envs
    quotas = [(episodes + i) // n_envs for i in range(n_envs)]
    out = Episodes()
    played = [0] * n_envs
    steps = 0
    start = time.perf_counter()
    try:
        obs = env.reset()
        while len(out.scores) < episodes:
            actions = np.asarray(act_fn(obs))
            if actions.size != n_envs:
                raise ValueError(f"act_fn must return {n_envs} actions (one per env), got shape {actions.shape}")
            obs, _, dones, infos = env.step(actions.reshape(n_envs))
            out.env_steps += n_envs
            steps += 1
            if on_step is not None and steps % 100 == 0:
                on_step(steps)
            for i in np.flatnonzero(dones):
                if "episode" in infos[i] and played[i] < quotas[i]:
                    out.scores.append(float(infos[i]["episode"]["r"]))
                    out.lengths.append(int(infos[i]["episode"]["l"]))
                    out.cut.append(bool(infos[i].get("TimeLimit.truncated", False)))
                    played[i] += 1
                    if on_episode is not None:
                        on_episode(len(out.scores), episodes)
    finally:
        env.close()
    out.seconds = time.perf_counter() - start
    return out
