"""One game of a blip-rl RL checkpoint (any environment family) as a standard stable-baselines3 ``PPO`` zip.

The env part of the model card (the env code, the settings it expects) comes from the task's
family (:meth:`blip_rl.envs.family.EnvFamily.model_card`); what follows describes Atari's.

``blip-rl export CHECKPOINT --game G --out model.zip`` (:func:`export_game`) writes an SB3
``PPO`` whose policy is SB3's own ``ActorCriticCnnPolicy`` with

* ``features_extractor``: the checkpoint's trunk as plain layers,
  :class:`~blip_rl.agents.extractors.BlipAtariCNN` with ``quantized=False`` (``nn.Conv2d`` /
  ``nn.Linear`` of the same shapes: a BLIP layer's forward uses its weight tensor directly, so
  the plain copy computes the same function; the BLIP bookkeeping buffers are left behind) and
  the checkpoint's ``channels_last`` (a memory layout only: the same convolutions as blip-rl's
  own forward, hence the same float32 results);
* ``net_arch=[]``: no MLP between the trunk and the heads, as in the multi-head policy;
* ``action_net`` / ``value_net``: game G's policy and value heads,

with the weights as the checkpoint's forward pass uses them for G (between the continual
method's ``before_eval`` and ``after_eval``, as ``blip-rl eval`` plays). The export checks this
on random observations before writing anything. ``PPO.load(path)`` needs no env and no
``custom_objects``: the extractor class is imported from the installed ``blip_rl`` package.

Observation space ``Box(0, 255, (frame_stack, 84, 84), uint8)`` (channel-first; SB3's
``predict`` transposes the channel-last frames of ``make_atari_env`` + ``VecFrameStack``),
action space ``Discrete(n)`` over the game's minimal action set. The zip's data also holds a
plain dict ``blip_rl_metadata`` (``PPO.load(...).blip_rl_metadata``). Beside the zip a model
card (same stem, ``.md``) says where the policy came from, its scores so far, the env settings
it expects and the exact Python that evaluates it with SB3's ``evaluate_policy``.
"""
from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from blip_rl import __version__
from blip_rl.errors import UserError

from .checkpoint import (CheckpointError, checkpoint_family, checkpoint_obs_space, checkpoint_task, load_checkpoint,
                         load_method, read_checkpoint)
from .extractors import TRUNKS

__all__ = ["ExportError", "Exported", "export_game", "export_paths", "build_sb3_model", "sb3_eval_code"]

#: Largest difference allowed between the exported policy and the checkpoint's head, in action
#: probabilities and values, on random observations (the same float32 arithmetic in the same
#: memory layout: in practice the difference is 0; a mismatch means the method changes the
#: network at evaluation in a way a plain SB3 policy cannot hold).
TOLERANCE = 1e-5


class ExportError(UserError):
    """A checkpoint or game that cannot be exported; the message says why and what to do."""


@dataclass
class Exported:
    """What :func:`export_game` wrote."""

    #: The SB3 zip (always ending as SB3 names it: ``.zip`` appended to a name without suffix).
    zip_path: Path
    #: The model card beside it (same stem, ``.md``).
    card_path: Path
    game: str
    #: The head of the checkpoint the policy is (0-based: the game's place in the run).
    head: int
    n_actions: int
    #: Largest differences from the checkpoint's head on the check's random observations.
    max_prob_diff: float
    max_value_diff: float
    metadata: dict[str, Any]


def export_paths(out: str | Path) -> tuple[Path, Path]:
    """The zip and model-card paths :func:`export_game` writes for ``--out out``.

    SB3's own rule for the zip: ``.zip`` is appended to a name without a suffix (``model`` ->
    ``model.zip``; ``PPO.load("model")`` then finds it), any other name is kept. The card is the
    zip's path with the suffix ``.md``.
    """
    out = Path(out)
    zip_path = out if out.suffix else out.with_name(out.name + ".zip")
    return zip_path, zip_path.with_suffix(".md")


def _read_rl(path: Path) -> dict[str, Any]:
    """The payload of an Atari checkpoint; other checkpoints get an export-specific message."""
    try:
        return read_checkpoint(path)
    except CheckpointError:
        kind = None
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(raw, dict):
                kind = ("classification" if str(raw.get("format", "")).startswith("blip-rl/classification")
                        else raw.get("learner"))
        except Exception:  # noqa: BLE001  (unreadable: read_checkpoint's own message is the right one)
            pass
        if kind == "classification":
            raise ExportError(f"{path} is a classification checkpoint; export writes stable-baselines3 PPO "
                              "models of RL policies only (checkpoints of `blip-rl train`)") from None
        raise


def _check_outputs(zip_path: Path, card_path: Path, force: bool) -> None:
    for p in (zip_path, card_path):
        if p.is_dir():
            raise ExportError(f"{p} is a directory; pass --out FILE.zip")
    if not force:
        there = [str(p) for p in (zip_path, card_path) if p.exists()]
        if there:
            raise ExportError(f"{' and '.join(there)} already exist{'s' if len(there) == 1 else ''}; pass another "
                              "--out, or --force to overwrite")


def build_sb3_model(frame_stack: int, n_actions: int, features_dim: int, *, channels_last: bool = False,
                    ppo: dict[str, Any] | None = None, observation_space: spaces.Box | None = None,
                    trunk: str = "atari", trunk_options: dict[str, Any] | None = None):
    """An untrained SB3 ``PPO`` (no env, CPU) with the exported architecture.

    ``ppo``: PPO hyperparameters to store with it (the run's, for reference). Built under a
    forked torch RNG, so the caller's random state is untouched. ``observation_space`` (default:
    ``frame_stack`` 84x84 Atari frames) and ``trunk`` (:data:`~blip_rl.agents.extractors.TRUNKS`)
    give other families' networks; images get SB3's ``ActorCriticCnnPolicy``, vectors its
    ``ActorCriticPolicy``.
    """
    from stable_baselines3 import PPO
    from stable_baselines3.common.policies import ActorCriticCnnPolicy, ActorCriticPolicy

    extractor_kwargs: dict[str, Any] = {"features_dim": int(features_dim), "quantized": False, **(trunk_options or {})}
    if channels_last:  # faster convolutions, and the layout blip-rl's own forward uses
        extractor_kwargs["channels_last"] = True
    ppo = dict(ppo or {})
    adam_eps = ppo.pop("adam_eps", 1e-5)
    space = observation_space if observation_space is not None else spaces.Box(0, 255, (int(frame_stack), 84, 84),
                                                                               np.uint8)
    policy_class = ActorCriticCnnPolicy if len(space.shape) == 3 else ActorCriticPolicy
    with torch.random.fork_rng(devices=[]):
        model = PPO(policy_class, env=None, device="cpu", _init_setup_model=False, **ppo,
                    policy_kwargs={"features_extractor_class": TRUNKS[trunk],
                                   "features_extractor_kwargs": extractor_kwargs,
                                   "net_arch": [], "ortho_init": False, "share_features_extractor": True,
                                   "optimizer_kwargs": {"eps": adam_eps}})
        model.observation_space = space
        model.action_space = spaces.Discrete(int(n_actions))
        model.n_envs = 1
        model._setup_model()
    model.policy.set_training_mode(False)
    return model


def _ppo_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The run's PPO hyperparameters in SB3's terms (learning rate: the start of each game's
    linear decay; batch size: one of the run's ``n_minibatches`` over its ``n_envs`` envs)."""
    p, env = config.get("ppo") or {}, config.get("env") or {}
    out: dict[str, Any] = {k: p[k] for k in ("learning_rate", "n_steps", "n_epochs", "gamma", "gae_lambda",
                                             "clip_range", "ent_coef", "vf_coef", "max_grad_norm", "adam_eps")
                           if k in p}
    if "n_steps" in p and p.get("n_minibatches"):
        out["batch_size"] = max(2, int(p["n_steps"]) * int(env.get("n_envs", 1)) // int(p["n_minibatches"]))
    return out


def _eval_settings(config: dict[str, Any], task=None) -> dict[str, Any]:
    """The env and evaluation settings of ``blip-rl eval`` for this run (its config's): the
    evaluation's own, and the settings the task's family plays it with (``card_settings``)."""
    from blip_rl.config import TrainConfig, merge
    from blip_rl.envs.family import family_of, get_family

    cfg = merge(TrainConfig(), {k: v for k, v in config.items() if k in ("env", "eval", "seed")})
    ev = cfg.eval
    n_envs = min(ev.n_envs or min(ev.episodes, 64), ev.episodes)
    family = family_of(task) if task is not None else get_family("atari")
    return {
        **(family.card_settings(task, cfg.env) if task is not None else {}),
        "max_episode_steps": ev.max_episode_steps, "episodes": ev.episodes, "n_envs": n_envs,
        "seed": cfg.seed + ev.seed_offset, "run_seed": cfg.seed, "seed_offset": ev.seed_offset,
        "deterministic": ev.deterministic,
    }


def sb3_eval_code(zip_path: str | Path, task, ev: dict[str, Any]) -> str:
    """Python that evaluates the exported zip with SB3 alone as ``blip-rl eval`` plays (``ev``:
    :func:`_eval_settings`); the env comes from the task's family (``model_card``); it leaves
    the per-game scores in ``scores``."""
    from blip_rl.envs.family import family_of

    card = family_of(task).model_card(task, ev)
    return f'''{card["code"].rstrip()}
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy

model = PPO.load({str(zip_path)!r}, device="cpu")
scores, lengths = evaluate_policy(model, env, n_eval_episodes={ev["episodes"]}, deterministic={ev["deterministic"]!r},
                                  return_episode_rewards=True)
env.close()
print("scores:", scores, "mean:", sum(scores) / len(scores))
'''


def _results_rows(results: dict[str, Any] | None, j: int) -> list[dict[str, Any]]:
    """This game's entries of the score matrix: one per row (after each task) that holds it."""
    if not results:
        return []
    tasks = results.get("tasks") or []
    rows = []
    for i, row in enumerate(results.get("raw") or []):
        if j >= len(row) or row[j] is None:
            continue

        def cell(key: str) -> Any:
            matrix = results.get(key) or []
            return matrix[i][j] if i < len(matrix) and j < len(matrix[i]) else None

        rows.append({"after": tasks[i] if i < len(tasks) else str(i + 1), "after_task": i + 1, "raw": row[j],
                     "normalized": cell("normalized"), "episodes": cell("episodes"), "cut": cell("cut"),
                     "step": (results.get("steps") or [None] * (i + 1))[i]})
    return rows


def _scores(payload: dict[str, Any], checkpoint: Path, j: int) -> tuple[list[dict[str, Any]], str | None]:
    """Game ``j``'s entries of the score matrix after each task this checkpoint has learned, and
    where they come from.

    A checkpoint is written when its task is learned, before the evaluation that follows, so
    its own matrix lacks its last row; the run's ``results.json`` (``RUN_DIR/results.json``
    beside ``RUN_DIR/checkpoints/``) has it, and is used when it is there and of the same run
    (same tasks and method), up to this checkpoint's tasks."""
    own = payload.get("results")
    rows, source = _results_rows(own, j), ("checkpoint" if own else None)
    if checkpoint.parent.name == "checkpoints":
        try:
            run = json.loads((checkpoint.parent.parent / "results.json").read_text())
            if run.get("tasks") == list(payload["tasks"]) and run.get("method") == payload["method"]["name"]:
                done = int(payload["tasks_done"])
                cut = {k: run[k][:done] for k in ("raw", "normalized", "episodes", "cut", "steps") if k in run}
                from_run = _results_rows({**run, **cut}, j)
                if len(from_run) > len(rows):
                    rows, source = from_run, "results.json"
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            pass
    return rows, source


def _random_obs(space: spaces.Box, n: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    if space.dtype == np.uint8:
        high = int(min(space.high.max(), 255))
        return torch.randint(0, high + 1, (n, *space.shape), dtype=torch.uint8, generator=gen)
    return torch.randn((n, *space.shape), generator=gen)


def _compare(policy, model, head: int, frame_stack: int, *, n: int = 8,
             space: spaces.Box | None = None) -> tuple[float, float]:
    """Largest differences in action probabilities and (relative) values between head ``head``
    of the multi-head ``policy`` and the SB3 ``model`` on ``n`` random observations."""
    obs = _random_obs(space if space is not None else spaces.Box(0, 255, (frame_stack, 84, 84), np.uint8), n)
    with torch.no_grad():
        want_p = torch.softmax(policy.head_logits(obs, head, exact=True), -1)
        want_v = policy.value_heads[head](policy.extract_features(obs, policy.vf_features_extractor))
        got_p = model.policy.get_distribution(obs).distribution.probs
        got_v = model.policy.predict_values(obs)
    # values are returns (any size): their difference relative to the largest, at least 1
    return float((want_p - got_p).abs().max()), float((want_v - got_v).abs().max() / want_v.abs().max().clamp(min=1))


#: What the card says a normalized score is, by the run's ``normalization``.
_NORMALIZED = {"ppo": "0 = random, 1 = single-task PPO reference (Schulman et al. 2017)",
               "human": "0 = random, 1 = human (Mnih et al. 2015)", "none": "none (the run normalized no scores)"}


def _fmt(x: Any, digits: int = 1) -> str:
    return "-" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def _card(meta: dict[str, Any], zip_path: Path, code: str) -> str:
    ev, game = meta["eval"], meta["game"]
    lines = [
        f"# {game['title']} ({game['name']}): a blip-rl policy as a stable-baselines3 PPO model",
        "",
        f"`{zip_path.name}` is head {meta['head']} (game {meta['head'] + 1} of the run) of a blip-rl checkpoint, "
        f"exported as a standard stable-baselines3 `PPO` zip: policy `{meta['policy_class']}`, features extractor "
        f"`blip_rl.agents.extractors.{meta['extractor_class']}` with plain layers "
        f"(`features_extractor_kwargs={meta['extractor_kwargs']}`), `net_arch=[]`, the game's policy head as `action_net` and its "
        "value head as `value_net`. `PPO.load` needs blip-rl installed (for the extractor class) and "
        f"stable-baselines3 {meta['sb3_version'].rsplit('.', 1)[0]}.x; no env and no `custom_objects`. "
        "`PPO.load(...).blip_rl_metadata` holds what this card says, as a dict.",
        "",
        "## Where it came from",
        "",
        "| | |",
        "|---|---|",
        f"| checkpoint | `{meta['checkpoint']}` |",
        f"| game | {game['title']} (`{game['name']}`" + (f", `{game['gym_id']}`" if game.get("gym_id") else "")
        + f"), {meta['n_actions']} actions |",
        f"| method | {meta['method']} (`{meta['method_spec']}`) |",
        f"| games of the run | {', '.join(meta['tasks'])} |",
        f"| learned at this checkpoint | {', '.join(meta['tasks_learned'])} ({meta['tasks_done']} of "
        f"{len(meta['tasks'])}) |",
        f"| seed | {meta['seed']} |",
        f"| env steps | {meta['global_step']:,} in all ({meta['steps_per_game']:,} per game) |",
        f"| blip-rl | {meta['blip_rl_version']} (exported by {meta['exported_by']}) |",
        "",
        "## Scores so far",
        "",
    ]
    rows = meta["results"]
    if rows:
        where = {"checkpoint": "the checkpoint's score matrix",
                 "results.json": "the run's results.json, rows up to this checkpoint"}[meta["results_source"]]
        lines += [f"Mean raw game score of {game['name']} in the run's evaluations ({ev['episodes']} game{'s' if ev['episodes'] != 1 else ''} of at most "
                  f"{ev['max_episode_steps']:,} agent steps, {'greedy' if ev['deterministic'] else 'sampled'} "
                  f"actions), from {where}; normalized: {_NORMALIZED.get(ev['normalization'], ev['normalization'])}.",
                  "",
                  "| after learning | env step | raw score | normalized | games | cut at the step limit |",
                  "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['after']} (task {r['after_task']}) | {_fmt(r['step'])} | {_fmt(r['raw'])} | "
                  f"{_fmt(r['normalized'], 3)} | {_fmt(r['episodes'])} | {_fmt(r['cut'])} |" for r in rows]
    else:
        lines.append("No evaluation of this game is known here: a checkpoint is written before the evaluation that "
                     "follows its task, and the run's results.json was not found beside its checkpoints/ folder.")
    lines += ["", "## The environment it expects", ""]
    lines += [f"- {note}" for note in meta["env_notes"]]
    lines += [
        f"- actions: {'greedy (`deterministic=True`)' if ev['deterministic'] else 'sampled (`deterministic=False`)'}"
        + ("" if ev["deterministic"] else "; SB3 samples with torch's global RNG, blip-rl with its own seeded "
           "generator: the same distribution of scores, not the same games"),
        f"- evaluation seeds: {ev['seed']} (the run's seed {ev['run_seed']} + {ev['seed_offset']}), env i "
        f"seeded {ev['seed']} + i, {ev['n_envs']} env(s) for {ev['episodes']} game(s)",
    ]
    lines += [
        "",
        "## Evaluate it",
        "",
        "```python",
        code.rstrip("\n"),
        "```",
        "",
        "The same with blip-rl: "
        f"`blip-rl eval {meta['checkpoint']} --game {game['name']}`.",
        "",
    ]
    return "\n".join(lines)


def export_game(checkpoint: str | Path, game: str, out: str | Path, *, force: bool = False) -> Exported:
    """Write game ``game`` of an Atari ``checkpoint`` as an SB3 ``PPO`` zip and its model card.

    :param game: any name :func:`blip_rl.envs.get_game` accepts, of a game the checkpoint has learned.
    :param out: the zip (``.zip`` is appended to a name without suffix, as SB3 does); the card
        goes beside it with the suffix ``.md``.
    :param force: overwrite an existing zip or card (otherwise refused).
    :raises UserError: (:class:`ExportError`, :class:`CheckpointError`) a missing, corrupt or
        non-Atari checkpoint, a game it has not learned, an existing output without ``force``.
        Nothing is written then.
    """
    import stable_baselines3

    from blip_rl.envs.family import family_of
    from blip_rl.io import atomic_write, atomic_write_text

    checkpoint = Path(checkpoint)
    zip_path, card_path = export_paths(out)
    payload = _read_rl(checkpoint)  # first: a classification checkpoint is said to be one, not a bad game name
    g, head, learned = checkpoint_task(checkpoint, game)
    _check_outputs(zip_path, card_path, force)
    if checkpoint.resolve() in (zip_path.resolve(), card_path.resolve()):
        raise ExportError(f"--out {out} would overwrite the checkpoint itself; pass another --out")

    policy, payload = load_checkpoint(checkpoint)
    state, config = payload["state"], payload["state"]["config"]
    n_actions = int(state["n_actions"][head])
    frame_stack = int(state.get("frame_stack", 0))
    space = checkpoint_obs_space(state)
    trunk_kwargs = dict(state["extractor_kwargs"])
    trunk = trunk_kwargs.get("trunk", "atari")
    features_dim = int(trunk_kwargs.get("features_dim", policy.features_extractor.features_dim))
    channels_last = bool(trunk_kwargs.get("channels_last", False))
    method = load_method(payload, policy)
    model = build_sb3_model(frame_stack, n_actions, features_dim, channels_last=channels_last,
                            ppo=_ppo_settings(config), observation_space=space, trunk=trunk,
                            trunk_options={k: trunk_kwargs[k] for k in ("channels", "layer_norm") if k in trunk_kwargs})
    method.before_eval(head + 1)  # the network as the method evaluates this game (e.g. a mask)
    try:
        trunk = policy.features_extractor.state_dict()
        target = model.policy.features_extractor
        target.load_state_dict({k: trunk[k] for k in target.state_dict()})
        model.policy.action_net.load_state_dict(policy.action_heads[head].state_dict())
        model.policy.value_net.load_state_dict(policy.value_heads[head].state_dict())
        dp, dv = _compare(policy, model, head, frame_stack, space=space)
    finally:
        method.after_eval(head + 1)
    if not (dp <= TOLERANCE and dv <= TOLERANCE):
        raise ExportError(f"the exported policy differs from head {head} of {checkpoint} (probabilities by {dp:.2e}, "
                          f"values by {dv:.2e}): method {payload['method']['name']!r} changes the network at "
                          "evaluation in a way a plain SB3 policy cannot hold")

    ev = _eval_settings(config, g)
    ev["normalization"] = config.get("normalization", "ppo")
    card = family_of(g).model_card(g, ev)
    rows, source = _scores(payload, checkpoint, payload["tasks"].index(g.name))
    meta = {
        "format": "blip-rl/sb3-export", "version": 1, "blip_rl_version": payload.get("blip_rl_version"),
        "exported_by": __version__, "sb3_version": stable_baselines3.__version__, "exported_at": time.time(),
        "checkpoint": str(checkpoint),
        "game": {"name": g.name, "title": g.title, "family": g.family, "gym_id": getattr(g, "gym_id", None),
                 **({"rom": g.rom} if hasattr(g, "rom") else {}), "spec": g.spec},
        "policy_class": type(model.policy).__name__, "extractor_class": type(model.policy.features_extractor).__name__,
        "env_notes": card["notes"], "observations": card["observations"],
        "head": head, "n_actions": n_actions, "frame_stack": frame_stack, "features_dim": features_dim,
        "extractor_kwargs": dict(model.policy.features_extractor_kwargs),
        "tasks": list(payload["tasks"]), "tasks_done": int(payload["tasks_done"]), "tasks_learned": learned,
        "method": payload["method"]["name"], "method_spec": payload["method"].get("spec"),
        "method_options": payload["method"].get("options"),
        "seed": config.get("seed"), "global_step": int(payload["global_step"]),
        "steps_per_game": config.get("steps_per_game"),
        "results": rows, "results_source": source,
        "eval": ev,
    }
    meta = json.loads(json.dumps(meta, default=str))  # plain JSON: SB3 stores it as is, no pickle
    model.blip_rl_metadata = meta
    buf = io.BytesIO()
    model.save(buf)
    code = sb3_eval_code(zip_path, g, ev)
    atomic_write(zip_path, lambda f: f.write(buf.getvalue()))
    atomic_write_text(card_path, _card(meta, zip_path, code))
    return Exported(zip_path=zip_path, card_path=card_path, game=g.name, head=head, n_actions=n_actions,
                    max_prob_diff=dp, max_value_diff=dv, metadata=meta)
