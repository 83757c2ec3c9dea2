"""Typed run configuration: dataclass schema, YAML files, command-line overrides.

A YAML file may set any field (nested sections as mappings); CLI flags override it; the resolved
config is written to the run dir as ``config.yaml``. Unknown keys and wrong types fail early
with a message naming the key (and the nearest valid one). No ``eval``.
"""
from __future__ import annotations

from .errors import UserError

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .core.bits import check_max_bits
from .core.methods import METHODS, MethodError, check_options, resolve_method
from .core.quant import DEFAULT_F_PRIOR
from .flags import DEFAULT_SEED
from .system import PRECISIONS
from .values import coerce

#: Choices of ``normalization`` (the same tuple as blip_rl.envs.NORMALIZATIONS, which a test checks;
#: the config layer does not import the envs).
NORMALIZATIONS = ("ppo", "human", "none")

__all__ = ["parse_assignments", "upgrade_keys", "EnvConfig", "PPOConfig", "EvalConfig", "TrainConfig",
           "load_config", "merge", "to_dict", "ConfigError"]


class ConfigError(UserError):
    """A config file or override is invalid; the message says which key and what to do."""


def bounded(default: Any = dataclasses.MISSING, *, ge: float | None = None, gt: float | None = None,
            le: float | None = None, choices: tuple[str, ...] | None = None, zero: str = "",
            factory: Any = dataclasses.MISSING) -> Any:
    """A config field with its valid range declared beside it (checked by :func:`check_ranges`
    for every key, before anything is written or trained).

    :param zero: what 0 means for this key, said in the error (e.g. "0: every usable core").
    """
    meta = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("choices", choices)) if v is not None}
    if zero:
        meta["zero"] = zero
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _range_text(meta: dict[str, Any]) -> str:
    if "choices" in meta:
        return "one of " + ", ".join(meta["choices"])
    low = f">= {meta['ge']}" if "ge" in meta else f"> {meta['gt']}" if "gt" in meta else ""
    if "le" in meta:
        lo = meta.get("ge", meta.get("gt"))
        return f"in [{lo}, {meta['le']}]" if "ge" in meta else f"in ({lo}, {meta['le']}]"
    return low


def check_ranges(cfg: Any, prefix: str = "") -> None:
    """Every field of ``cfg`` (nested sections too) inside the range its :func:`bounded` declares.

    :raises ConfigError: the first key out of range, named with its flag and what it may be.
    """
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            check_ranges(value, prefix=f"{key}.")
            continue
        meta = f.metadata
        if not meta or value is None:
            continue
        ok = True
        if "choices" in meta:
            ok = value in meta["choices"]
        else:
            ok = (("ge" not in meta or value >= meta["ge"]) and ("gt" not in meta or value > meta["gt"])
                  and ("le" not in meta or value <= meta["le"]))
        if not ok:
            flag = FLAGS.get(key)
            hint = (f" ({meta['zero']})" if meta.get("zero") else "") + (f"; give {flag} {_example(meta)}"
                                                                          if flag else "")
            raise ConfigError(f"{key} must be {_range_text(meta)}, got {value!r}{hint}")


def _example(meta: dict[str, Any]) -> str:
    if "choices" in meta:
        return meta["choices"][0]
    return f"{meta.get('ge', meta.get('gt'))} or more" if "ge" in meta else f"above {meta.get('gt')}"


@dataclass
class MinAtarEnvConfig:
    """How MinAtar's games are played (MinAtar's own defaults)."""

    sticky_action_prob: float = bounded(0.1, ge=0, le=1)  #: the previous action repeats with this probability
    difficulty_ramping: bool = True  #: games speed up as they go on
    #: agent steps after which a game is cut (MinAtar has none of its own)
    max_episode_steps: int = bounded(10_000, ge=1)


@dataclass
class EnvConfig:
    #: "ale" (ale-py's native vector env, C++ threads) or "sb3" (make_atari_env)
    backend: str = bounded("ale", choices=("ale", "sb3"))
    n_envs: int = bounded(16, ge=1)  #: parallel environments (paper: 16)
    frame_stack: int = bounded(4, ge=1)
    frameskip: int = bounded(4, ge=1)
    noop_max: int = bounded(30, ge=0)
    #: sticky actions; 0 as in the paper's NoFrameskip-v4
    repeat_action_probability: float = bounded(0.0, ge=0, le=1)
    max_episode_steps: int = bounded(27000, ge=1)  #: agent steps per game (108k frames)
    #: MinAtar's settings (the keys above are Atari's; n_envs serves every family)
    minatar: MinAtarEnvConfig = field(default_factory=MinAtarEnvConfig)


@dataclass
class WandbConfig:
    """Weights & Biases, optional (the ``wandb`` extra): one W&B run per blip-rl run, mirroring
    what TensorBoard gets; a resumed run continues the same W&B run."""

    #: W&B project; empty: no W&B (``--wandb PROJECT`` sets it)
    project: str = ""
    entity: str = ""  #: W&B entity (team or user); empty: W&B's default
    group: str = ""  #: W&B run group (e.g. a sweep's name); empty: none
    #: online | offline | disabled; empty: WANDB_MODE, else W&B's default (online)
    mode: str = bounded("", choices=("", "online", "offline", "disabled"))
    #: where W&B writes its files; empty: the run dir (RUN_DIR/wandb)
    dir: str = ""


@dataclass
class PPOConfig:
    #: Adam lr at the start of each game, decayed linearly to 0
    learning_rate: float = bounded(2.5e-4, gt=0)
    lr_decay: bool = True  #: linear decay within each game
    adam_eps: float = bounded(1e-5, gt=0)
    fused_adam: bool = True  #: PyTorch's fused Adam kernel (CPU and CUDA): same update, ~7x faster step here
    #: rollout length per env. 128 (a power of two) divides into 8 minibatches for any n_envs;
    #: the paper's 125 (16 envs x 125 = 2,000) is in configs/atari6.yaml.
    n_steps: int = bounded(128, ge=1)
    n_epochs: int = bounded(4, ge=1)
    #: minibatches per epoch; batch size = n_steps * n_envs / n_minibatches. Where it does not
    #: divide the rollout, the nearest count that does is used, with a note (TrainConfig.validate).
    n_minibatches: int = bounded(8, ge=1)
    gamma: float = bounded(0.99, ge=0, le=1)
    gae_lambda: float = bounded(0.95, ge=0, le=1)
    clip_range: float = bounded(0.1, gt=0)
    ent_coef: float = bounded(0.01, ge=0)
    vf_coef: float = bounded(0.5, ge=0)
    max_grad_norm: float = bounded(0.5, gt=0)


@dataclass
class EvalConfig:
    """Evaluation of every learned game. The defaults keep short runs short: a game is cut at
    4,500 agent steps (18k frames, 5 minutes of play), where a young greedy policy that never
    ends a game would otherwise play 27,000. The paper's protocol (full games up to 27,000
    steps) is in configs/atari6.yaml; how many games were cut is logged and kept in
    results.json either way."""

    #: env steps between evaluations of all learned games during training (0: per game only)
    every: int = bounded(0, ge=0, zero="0: evaluate after each game only")
    episodes: int = bounded(10, ge=1)  #: evaluation games per learned game
    deterministic: bool = True  #: greedy actions (the paper); False samples from the policy
    #: envs playing in parallel; 0: one per game (up to 64), all games at once
    n_envs: int = bounded(0, ge=0, zero="0: one env per evaluation game")
    max_episode_steps: int = bounded(4500, ge=1)  #: cap on agent steps per evaluation game (paper: 27000)
    seed_offset: int = bounded(10_000, ge=0)  #: evaluation envs use seed + offset (their own seeds)


#: The largest seed: every env's seed (seed + eval.seed_offset + env index) must fit ALE's C int.
MAX_SEED = 2**31 - 1 - 10_000 - 64


@dataclass
class TrainConfig:
    games: list[str] = field(default_factory=lambda: ["kungfu", "boxing", "jamesbond", "krull", "riverraid",
                                                      "spaceinvaders"])
    #: a registered method (blip | ewc | ft | ft-fix, see `blip-rl train --help`) or package.module:Class
    method: str = "blip"
    #: options per method name, e.g. {blip: {consolidation: overwrite}, ewc: {ewc_lambda: 5000}}
    #: (each method's Options dataclass; `--set methods.NAME.KEY=VALUE`): the chosen method gets
    #: its entry, so one config can carry the options of every method a sweep compares
    methods: dict[str, Any] = field(default_factory=dict)
    steps_per_game: int = bounded(10_000_000, ge=1)  #: env steps per game (all envs together)
    seed: int = bounded(DEFAULT_SEED, ge=0, le=MAX_SEED)
    device: str = "auto"  #: auto | cpu | cuda | cuda:N
    #: auto | fp32 | bf16. auto: bf16 autocast only where the device runs it natively and a
    #: calibration stored for the machine measured it faster (blip_rl/precision.py); fp32 master
    #: weights, clipping, bits and Fisher always.
    precision: str = bounded("auto", choices=PRECISIONS)
    #: width of the trunk's fully connected layer; 0: the trunk's own (atari 1024, minatar 128, mlp 64)
    features_dim: int = bounded(0, ge=0, zero="0: the trunk's own width")
    #: auto (by observation shape: 84x84 frames -> atari, small grids -> minatar, vectors -> mlp) |
    #: atari | minatar | mlp
    trunk: str = bounded("auto", choices=("auto", "atari", "minatar", "mlp"))
    #: conv channels of the minatar trunk; 0: its own (16)
    trunk_channels: int = bounded(0, ge=0, zero="0: the trunk's own (16)")
    #: a LayerNorm without parameters between each trunk layer and its ReLU (a plasticity aid,
    #: usable with any method; it has nothing to learn, so BLIP and the rest protect the same weights)
    layer_norm: bool = False
    #: N, bits per weight of the trunk's BLIP layers (1..24: float32's mantissa, core.bits.check_max_bits)
    max_bits: int = 20
    fisher_samples: int = bounded(2000, ge=1)  #: states from the policy's own last rollouts for the Fisher
    fisher_batch_size: int = bounded(250, ge=1)
    #: what a game's normalized score is relative to: ppo (PPO after 40M frames, the BLIP paper's;
    #: the human score where none exists) | human (human-normalized) | none. Games without a
    #: reference under it get one warning at start and no normalized score (never a zero).
    normalization: str = bounded("ppo", choices=NORMALIZATIONS)
    #: states of each game's own last rollouts kept to measure its policy drift later (0: off);
    #: 28 KB each in every checkpoint
    drift_samples: int = bounded(512, ge=0, zero="0: no policy drift measured")
    #: torch and ALE worker threads; 0: every core this process may use
    threads: int = bounded(0, ge=0, zero="0: every core this process may use")
    #: env steps between resumable checkpoints inside a game (0: per game only)
    checkpoint_every: int = bounded(500_000, ge=0, zero="0: after each game only")
    #: all: checkpoints/<k>_<game>.pt after each game (85 MB each for the paper's trunk) and
    #: latest.pt; last: latest.pt only
    keep_checkpoints: str = bounded("all", choices=("all", "last"))
    env: EnvConfig = field(default_factory=EnvConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)

    def method_kwargs(self) -> dict[str, Any]:
        """The options :func:`blip_rl.core.make_method` gets for ``method``, checked against the
        method's ``Options`` (raises :class:`blip_rl.core.MethodError`)."""
        return check_options(resolve_method(self.method), self.options_of(self.method))

    def options_of(self, method: str) -> dict[str, Any]:
        """``methods``' entry for ``method`` (empty: the method's defaults)."""
        entry = self.methods.get(method) or {}
        if not isinstance(entry, dict):
            raise ConfigError(f"methods.{method} must be a mapping of the method's options, got {entry!r}")
        return dict(entry)

    @property
    def layer_f_prior(self) -> float:
        """F_prior of the trunk's BLIP layers: ``methods.blip.f_prior``, else the default."""
        value = self.options_of("blip").get("f_prior")
        return DEFAULT_F_PRIOR if value is None else float(value)

    def validate(self, notes: list[str] | None = None) -> "TrainConfig":
        """Check values that types alone cannot; returns self.

        A value that can be fitted is fitted, with a line appended to ``notes``: a
        ``ppo.n_minibatches`` that does not divide the rollout becomes the nearest count that
        does (as SB3 lets a batch size that does not divide the buffer run).
        """
        check_ranges(self)  # every key's declared range (bounded), the sections' too
        try:
            n_tasks = sum(1 for item in self.games for name in str(item).split(",") if name.strip())
            check_options(resolve_method(self.method), self.method_kwargs(), n_tasks=n_tasks)
            for name in self.methods:  # the options of the other registered methods, so a typo is found now
                if name != self.method and name in METHODS:
                    check_options(METHODS[name], self.options_of(name))
        except MethodError as exc:
            raise ConfigError(str(exc)) from None
        if not self.games:
            raise ConfigError("give at least one game, e.g. --games kungfu,boxing")
        rollout = self.ppo.n_steps * self.env.n_envs
        if self.steps_per_game < rollout:
            raise ConfigError(
                f"steps_per_game ({self.steps_per_game}) is below one rollout (ppo.n_steps x env.n_envs = "
                f"{rollout}); raise --steps-per-game or lower --n-envs / ppo.n_steps"
            )
        if rollout % self.ppo.n_minibatches:
            fitted = nearest_divisor(rollout, self.ppo.n_minibatches)
            if notes is not None:
                notes.append(f"note: ppo.n_minibatches {self.ppo.n_minibatches} does not divide the rollout of "
                             f"{rollout} (ppo.n_steps {self.ppo.n_steps} x --n-envs {self.env.n_envs}); using "
                             f"{fitted} minibatches of {rollout // fitted}")
            self.ppo.n_minibatches = fitted
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")
        try:
            check_max_bits(self.max_bits)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return self


#: The command-line flag of a config key, for error messages that say what to type.
FLAGS = {"env.n_envs": "--n-envs", "steps_per_game": "--steps-per-game", "eval.episodes": "--eval-episodes",
         "threads": "--threads", "precision": "--precision", "seed": "--seed", "wandb.project": "--wandb"}

#: Keys of earlier versions, read from old config.yaml files: old key -> (new key, convert).
LEGACY_KEYS = {
    "fast": ("precision", lambda value: "bf16" if _coerce("fast", value, bool) else "auto"),
    "torch_threads": ("threads", lambda value: _coerce("torch_threads", value, int)),
}
#: A section of config.yaml that records what a run chose on its machine; read as information only.
RUNTIME_KEY = "runtime"
#: What a resumed run chose where it differed (a list, appended on resume); information only.
RUNTIME_RESUMED_KEY = "runtime_resumed"


def nearest_divisor(n: int, target: int) -> int:
    """The divisor of ``n`` nearest to ``target`` (the smaller one on a tie)."""
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    return min(divisors, key=lambda d: (abs(d - target), d))


#: Spellings of method options of earlier versions, still read (with a note): the ``blip:`` and
#: ``ewc:`` sections and ``method_options:`` (the chosen method's) are ``methods.NAME`` now, and
#: BLIP's ``max_bits`` (a setting of the trunk's layers) is a top-level key.
LEGACY_SECTIONS = ("blip", "ewc", "method_options")


def upgrade_keys(data: dict[str, Any], *, method: str, notes: list[str] | None = None) -> dict[str, Any]:
    """Translate keys of earlier versions; drop the informational ``runtime`` section.

    :param method: the run's method, for ``method_options`` of earlier versions.
    :param notes: gets one line per old spelling read.
    """
    out: dict[str, Any] = {}
    moved: dict[str, Any] = {}
    for key, value in data.items():
        if key in (RUNTIME_KEY, RUNTIME_RESUMED_KEY):
            continue
        if key in LEGACY_KEYS:
            new, convert = LEGACY_KEYS[key]
            if new not in data:
                out[new] = convert(value)
            continue
        head, dot, rest = str(key).partition(".")
        if head in LEGACY_SECTIONS:
            entries = {rest: value} if dot else value
            if not isinstance(entries, dict):
                raise ConfigError(f"{key} must be a mapping of a method's options, got {value!r}")
            name = method if head == "method_options" else head
            for option, v in entries.items():
                if head == "blip" and option == "max_bits":
                    moved["max_bits"] = v
                else:
                    moved[f"methods.{name}.{option}"] = v
            if notes is not None:
                now = ", ".join(sorted(("max_bits" if head == "blip" and o == "max_bits" else f"methods.{name}.{o}")
                                       for o in entries))
                notes.append(f"note: {key}{'' if dot else ':'} is an earlier spelling, read as {now}")
            continue
        out[key] = value
    return {**out, **moved}  # after a `methods:` mapping, so that they add to it


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """``value`` as the field's type: a nested config section through :func:`merge`, any other
    value through the one reader of typed values, :func:`blip_rl.values.coerce`."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args and value is not None:
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and dataclasses.is_dataclass(inner[0]):
            return _coerce(key, value, inner[0])
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping of its fields, got {value!r}")
        return merge(hint(), value, prefix=f"{key}.")
    if origin is dict and not isinstance(value, dict):
        raise ConfigError(f"{key} must be a mapping (e.g. {{strength: 1.0}}), got {value!r}")
    return coerce(key, value, hint, error=ConfigError)


def _set_in(mapping: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """``mapping`` with ``key`` set; ``a.b`` sets ``b`` in the mapping ``a`` (the last dot splits,
    so that ``methods.pkg.mod:Class.strength`` reaches the option of ``pkg.mod:Class``)."""
    outer, dot, inner = key.rpartition(".")
    if not dot:
        mapping[key] = value
        return mapping
    sub = mapping.get(outer)
    mapping[outer] = {**(sub if isinstance(sub, dict) else {}), inner: value}
    return mapping


def parse_assignments(items: list[str] | None) -> dict[str, Any]:
    """``--set KEY=VALUE`` items as overrides; each value is read as YAML (``1.0e-3``, ``true``, ``[1, 2]``)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes KEY=VALUE (e.g. --set ppo.n_steps=128), got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = text
    return out


def merge(cfg: Any, overrides: dict[str, Any], *, prefix: str = "") -> Any:
    """Return a copy of dataclass ``cfg`` with ``overrides`` applied (nested dicts or dotted keys)."""
    if not isinstance(overrides, dict):
        raise ConfigError(f"a config must be a mapping of keys to values, got {type(overrides).__name__}")
    hints = _hints(type(cfg))
    values = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    nested: dict[str, dict[str, Any]] = {}
    for raw_key, value in overrides.items():
        # A field's name may be spelt with dashes (n-envs); what follows a dot is left as it is:
        # under a mapping it is a name of its own (methods.shrink-perturb.shrink, a method's name).
        head, _, rest = str(raw_key).partition(".")
        head = head.replace("-", "_")
        if head not in hints:
            near = difflib.get_close_matches(head, list(hints), n=1)
            # a section's key given at the top (learning_rate for ppo.learning_rate) names its section
            inner = {name: f"{section}.{name}" for section, hint in hints.items() if dataclasses.is_dataclass(hint)
                     for name in _hints(hint)}
            near_inner = difflib.get_close_matches(head, list(inner), n=1)
            if near_inner and (not near or near_inner[0] == head or difflib.SequenceMatcher(
                    None, head, near_inner[0]).ratio() > difflib.SequenceMatcher(None, head, near[0]).ratio()):
                near = [inner[near_inner[0]]]
            hint = f"; did you mean {prefix}{near[0]!s}?" if near else f"; valid keys: {sorted(hints)}"
            raise ConfigError(f"unknown config key '{prefix}{raw_key}'{hint}")
        if rest and typing.get_origin(hints[head]) is dict:  # --set methods.ewc.ewc_lambda=2
            values[head] = _set_in(dict(values[head]), rest, value)
        elif rest:
            if not dataclasses.is_dataclass(hints[head]):
                raise ConfigError(f"{prefix}{head} has no sub-keys (got {prefix}{raw_key})")
            nested.setdefault(head, {})[rest] = value
        elif dataclasses.is_dataclass(hints[head]):
            if not isinstance(value, dict):
                raise ConfigError(f"{prefix}{head} must be a mapping of its fields, got {value!r}")
            nested.setdefault(head, {}).update(value)
        else:
            values[head] = _coerce(prefix + head, value, hints[head])
    for head, sub in nested.items():
        values[head] = merge(values[head], sub, prefix=f"{prefix}{head}.")
    return type(cfg)(**values)


def config_file(name: str | Path) -> Path:
    """A config by path, or by name among the shipped configs (``atari6``, ``quick``,
    ``classification/digits5``; the ``.yaml`` may be left out)."""
    path = Path(name)
    if path.is_file():
        return path
    from importlib import resources

    shipped = resources.files("blip_rl.configs")
    for candidate in (str(name), f"{name}.yaml"):
        resource = shipped.joinpath(candidate)
        if resource.is_file():
            return Path(str(resource))
    names = sorted(p.name[:-5] for p in shipped.iterdir() if p.name.endswith(".yaml"))
    raise ConfigError(f"config file {name} does not exist; give a path or a shipped config: {', '.join(names)}")


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None, *,
                notes: list[str] | None = None) -> TrainConfig:
    """Defaults, then the YAML file at ``path`` (if any), then ``overrides`` (dotted keys allowed).

    Keys of earlier versions (``fast``, ``torch_threads``) are translated, and a ``runtime:``
    section (what a run chose on its machine) is ignored. Values fitted to each other (see
    :meth:`TrainConfig.validate`) add a line to ``notes``.
    """
    cfg, data = TrainConfig(), {}
    if path is not None:
        path = config_file(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must be a mapping of keys to values, got {type(data).__name__}")
    # the method the run will have: an earlier version's method_options are its options
    method = str((overrides or {}).get("method") or data.get("method") or cfg.method)
    if data:
        cfg = merge(cfg, upgrade_keys(data, method=method, notes=notes))
    if overrides:
        cfg = merge(cfg, upgrade_keys(overrides, method=method, notes=notes))
    return cfg.validate(notes)


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)
