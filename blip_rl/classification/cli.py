"""``blip-rl classify``: a continual classification benchmark, from YAML defaults and CLI overrides.

Example::

    blip-rl classify --benchmark digits5 --method blip --run-dir runs/digits5-blip
    blip-rl classify --benchmark pmnist --method ewc --data-dir ~/data --run-dir runs/pmnist-ewc \\
        --epochs 50 --set train.lr=0.01

Per-benchmark defaults are in ``configs/classification/<benchmark>.yaml``; ``--config`` picks
another file. The run directory receives ``config.yaml`` (the resolved config), ``command.txt``,
``results.json``/``results.csv``, ``checkpoints/`` and TensorBoard logs in ``tb/``. An existing
non-empty run directory is refused.
"""
from __future__ import annotations

from ..errors import UserError
from ..io import check_new_run_dir, lock_run_dir, remove_stale_temp_files
from ..config import WandbConfig, bounded, check_ranges
from ..flags import DEFAULT_SEED
from .learner import TrainConfig

import argparse
import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ClassifyConfig", "register", "run_classify", "default_config_path", "load_config"]

DEVICES = ("cpu", "cuda", "auto")


@dataclass
class ClassifyConfig:
    """One classification run, as read from YAML (every key documented in the config files).

    :param benchmark: name in :data:`blip_rl.classification.datasets.BENCHMARKS`.
    :param method: a registered method (``blip``, ``ewc``, ``ft``, ``ft-fix``, ...) or
        ``package.module:Class``.
    :param epochs: most epochs per task (the lr schedule usually stops earlier; paper: 200).
    :param seed: seeds the data split/order, the init, minibatches and Fisher sampling.
    :param device: ``cpu``, ``cuda`` or ``auto`` (cuda when available).
    :param threads: CPU threads for torch (``torch.set_num_threads``), or ``None`` for torch's
        default. Small nets (the digits MLPs) run many times faster on 1 thread, more so on a busy
        machine.
    :param data_dir: folder of the dataset files (not needed for the digits benchmarks).
    :param data: options of the benchmark loader (e.g. ``valid_fraction``, ``order``).
    :param model: ``arch`` (``mlp`` or ``alexnet``) and its options (widths, ``max_bits``, ``init``).
    :param train: the optimization, :class:`blip_rl.classification.learner.TrainConfig`.
    :param methods: options per method name (e.g. ``blip: {f_prior: 1.0e-11}``); the chosen
        method's entry is passed to :func:`blip_rl.core.make_method`.
    :param drift_samples: training inputs kept per task to measure how far its class
        distribution drifts later (:mod:`blip_rl.continual.drift`); 0: off.
    :param keep_checkpoints: ``all`` (a checkpoint after each task, and ``latest.pt``) or ``last``
        (``latest.pt`` only).
    """

    benchmark: str = ""
    method: str = "blip"
    epochs: int = bounded(200, ge=1)
    seed: int = bounded(DEFAULT_SEED, ge=0)
    device: str = bounded("auto", choices=DEVICES)
    threads: int | None = bounded(None, ge=1)
    data_dir: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=lambda: {"arch": "mlp"})
    train: TrainConfig = field(default_factory=TrainConfig)
    methods: dict[str, Any] = field(default_factory=dict)
    drift_samples: int = bounded(512, ge=0, zero="0: no drift measured")
    #: all: checkpoints/<k>_<task>.pt after each task and latest.pt; last: latest.pt only
    keep_checkpoints: str = bounded("all", choices=("all", "last"))
    #: Weights & Biases, as for train (``--wandb PROJECT``; empty project: off)
    wandb: WandbConfig = field(default_factory=WandbConfig)

    @property
    def method_options(self) -> dict[str, Any]:
        return dict(self.methods.get(self.method) or {})

    def resolved(self) -> dict[str, Any]:
        """The config as written to ``config.yaml``: only the chosen method's options."""
        d = asdict(self)
        d["methods"] = {self.method: self.method_options}
        return d


def default_config_path(benchmark: str) -> Path:
    """The shipped ``configs/classification/<benchmark>.yaml`` (installed as ``blip_rl.configs``)."""
    from ..config import config_file

    return config_file(f"classification/{benchmark}.yaml")


def load_config(path: str | Path, *, benchmark: str | None = None,
                overrides: dict[str, Any] | None = None) -> ClassifyConfig:
    """Read a YAML config, then ``overrides`` (dotted keys allowed), into the typed
    :class:`ClassifyConfig`: an unknown key is an error naming the nearest valid one, and a
    value of the wrong type an error naming its key (the same rules as ``blip-rl train``)."""
    from ..config import ConfigError, merge

    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist; pass --config FILE "
                        "(per-benchmark defaults are in configs/classification/)")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a config is a YAML mapping of keys to values")
    if benchmark is not None:
        raw.setdefault("benchmark", benchmark)
    if not raw.get("benchmark"):
        raise UserError(f"{path}: no 'benchmark' key")
    # An empty section (``train:`` with nothing under it) reads as None: the defaults.
    raw = {k: v for k, v in raw.items() if not (v is None and k in ("data", "model", "train", "methods"))}
    try:
        cfg = merge(ClassifyConfig(), raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return merge(cfg, overrides) if overrides else cfg


def build_config(args: argparse.Namespace) -> ClassifyConfig:
    """The run's config: YAML file, then the command-line flags, then ``--set`` overrides."""
    from ..config import parse_assignments

    path = Path(args.config) if args.config else default_config_path(args.benchmark)
    flags = {"method": args.method, "data_dir": args.data_dir, "epochs": args.epochs, "seed": args.seed,
             "device": args.device, "threads": getattr(args, "threads", None),
             "wandb.project": getattr(args, "wandb", None)}
    overrides = {k: v for k, v in flags.items() if v is not None}
    if args.f_prior is not None:
        if args.method != "blip":
            raise UserError("--f-prior is BLIP's Fisher prior: use it with --method blip")
        overrides["methods.blip.f_prior"] = args.f_prior
    overrides.update(parse_assignments(args.set))
    cfg = load_config(path, benchmark=args.benchmark, overrides=overrides)
    if args.config and cfg.benchmark != args.benchmark:
        raise UserError(f"--config {path} is for benchmark {cfg.benchmark!r}, not {args.benchmark!r}")
    cfg.benchmark = args.benchmark
    _validate(cfg)
    return cfg


def _validate(cfg: ClassifyConfig) -> None:
    from ..core import check_options, resolve_method
    from .datasets import BENCHMARKS

    if cfg.benchmark not in BENCHMARKS:
        raise UserError(f"unknown benchmark {cfg.benchmark!r}; choose one of {sorted(BENCHMARKS)}")
    check_ranges(cfg)  # every key's declared range (the same rules as train's config)
    if "arch" not in cfg.model:
        raise UserError("model.arch is missing (mlp or alexnet)")
    # The registry (or the plugin's own class) says which options the method takes.
    check_options(resolve_method(cfg.method), cfg.method_options)


def _resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    return name


def _command_line(args: argparse.Namespace) -> str:
    """The equivalent ``blip-rl classify`` command with every flag that was given."""
    parts = ["blip-rl", "classify", "--benchmark", args.benchmark, "--method", args.method]
    for flag, value in (("--data-dir", args.data_dir), ("--config", args.config), ("--run-dir", args.run_dir),
                        ("--epochs", args.epochs), ("--seed", args.seed), ("--f-prior", args.f_prior),
                        ("--device", args.device), ("--wandb", getattr(args, "wandb", None))):
        if value is not None:
            parts += [flag, str(value)]
    for assignment in args.set or []:
        parts += ["--set", assignment]
    return shlex.join(parts)


def run_classify(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """Run one benchmark with one method; print the score matrix, ACC and BWT. Returns 0.

    :param argv: the command line after ``blip-rl`` (for ``command.txt``); ``None`` writes the
        equivalent command rebuilt from ``args``.
    """
    if args.resume:
        given = [flag for flag, value in (("--benchmark", args.benchmark), ("--method", args.method),
                                          ("--run-dir", args.run_dir), ("--config", args.config),
                                          ("--epochs", args.epochs), ("--seed", args.seed), ("--set", args.set))
                 if value]
        if given:
            raise UserError(f"--resume continues a run with its own config.yaml; drop {', '.join(given)}")
        cfg = config_of_run(Path(args.resume))
        if getattr(args, "threads", None) is not None:  # a resumed run may land on another machine
            cfg.threads = args.threads
            check_ranges(cfg)
    else:
        if not (args.benchmark and args.method and args.run_dir):
            raise UserError("give --benchmark, --method and --run-dir for a new run (or --resume RUN_DIR)")
        cfg = build_config(args)
    from ..continual import Interrupted

    run_dir = Path(args.resume or args.run_dir)
    command = shlex.join(["blip-rl", *argv]) if argv is not None else _command_line(args)
    start = time.time()
    try:
        results, epochs = run_classification(cfg, run_dir, resume=bool(args.resume), command=command)
    except Interrupted as exc:
        import sys

        print(f"\nblip-rl: stopped at sample {exc.step}; checkpoint {exc.checkpoint}.\n"
              f"Resume with: blip-rl classify --resume {shlex.quote(str(run_dir))}", file=sys.stderr)
        return 128 + (exc.signum or 2)
    print()
    print(results.table())
    print(f"ACC {100 * results.acc:.2f}%  BWT {100 * results.bwt:.2f}%  "
          f"(epochs per task: {epochs}; {time.time() - start:.1f} s)")
    print(results.time_split())
    return 0


def config_of_run(run_dir: Path) -> ClassifyConfig:
    """The :class:`ClassifyConfig` of an existing run, from its ``config.yaml``."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise UserError(f"cannot resume: {run_dir} is not a blip-rl classify run dir (no config.yaml)")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or "benchmark" not in raw or "tasks" not in raw:
        raise UserError(f"cannot resume: {path} is not a classify run's config (made by `blip-rl train`?); "
                         "resume Atari runs with `blip-rl train --resume`")
    from ..config import merge

    known = set(ClassifyConfig.__dataclass_fields__)
    cfg = merge(ClassifyConfig(), {k: v for k, v in raw.items() if k in known})
    written = raw.get("methods") if isinstance(raw.get("methods"), dict) else {}
    # config.yaml holds the run's own method's options (``method_options:`` before 2026-12-01)
    cfg.methods = {cfg.method: dict(written.get(cfg.method) or raw.get("method_options") or {})}
    # The written model entry is the built model's constructor_kwargs: shapes come from the data.
    cfg.model = {k: v for k, v in cfg.model.items() if k not in ("input_shape", "head_sizes")}
    _validate(cfg)
    return cfg


def run_classification(cfg: ClassifyConfig, run_dir: str | Path, *, resume: bool, command: str,
                       say: Any = print) -> tuple[Any, list[int]]:
    """The classification run driver: a new run dir for ``cfg`` (``resume=False``; ``command`` goes
    to ``command.txt``) or the existing one, driven to its end. Returns the results and the epochs
    each task ran; a signal stops it after a checkpoint (:class:`~blip_rl.continual.Interrupted`).
    Torch's thread setting is left as it was."""
    import torch

    threads = torch.get_num_threads()
    try:
        return _run(cfg, Path(run_dir), resume, command, say)
    finally:
        torch.set_num_threads(threads)  # leave the caller's setting as it was


def _run(cfg: ClassifyConfig, run_dir: Path, resuming: bool, command: str, say: Any) -> tuple[Any, list[int]]:
    import torch

    from ..continual.driver import resume_state
    from ..core import make_method
    from ..logging import RunLogger
    from .datasets import load_benchmark
    from .learner import ClassificationLearner, read_checkpoint
    from .models import build_model

    from ..logging.mirror import check_wandb

    check_wandb(cfg.wandb, run_dir)  # the package and its directory, before anything is written
    if not resuming:
        check_new_run_dir(run_dir)  # before minutes of data loading
    else:
        lock_run_dir(run_dir)  # one writer per run dir: before anything is read, removed or written
    device = _resolve_device(cfg.device)
    from ..system import resolve_runtime

    # fp32: the classification nets are small; threads as the config says (checked here, before
    # anything is written).
    runtime = resolve_runtime(device=device, precision="fp32", threads=cfg.threads or 0)
    import dataclasses

    runtime = dataclasses.replace(runtime, precision_reason="classification trains in fp32")
    say(f"blip-rl: {runtime.summary()}")  # the first line, as train's
    train = cfg.train  # typed and validated when the config was read
    from ..core import check_options, resolve_method

    checked = check_options(resolve_method(cfg.method), cfg.method_options)  # typed by the method's Options
    method_options = {k: checked[k] for k in cfg.method_options}  # as given (the run's config records these)

    runtime.apply()  # the threads it chose (and recorded), whatever torch's default
    tasks = load_benchmark(cfg.benchmark, cfg.data_dir, seed=cfg.seed, **cfg.data)
    check_options(resolve_method(cfg.method), method_options, n_tasks=len(tasks))  # e.g. PackNet's capacity
    shapes = {t.input_shape for t in tasks}
    if len(shapes) != 1:
        raise UserError(f"benchmark {cfg.benchmark!r} gave tasks of different input shapes {sorted(shapes)}")
    torch.manual_seed(cfg.seed)
    model_options = dict(cfg.model)  # typed by the arch's own signature (build_model)
    arch = model_options.pop("arch")
    if method_options.get("f_prior") is not None:  # the layers' prior and the method's are one value
        model_options["f_prior"] = method_options["f_prior"]
    model = build_model(arch, input_shape=list(shapes.pop()), head_sizes=[t.n_classes for t in tasks],
                        **model_options)
    method = make_method(cfg.method, model.trunk, **method_options)

    resolved = cfg.resolved()
    resolved.update(device=device, methods={cfg.method: method_options}, train=asdict(train),
                    model=dict(model.constructor_kwargs), tasks=[t.name for t in tasks])
    from ..config import RUNTIME_KEY
    from ..continual.driver import note_resume, start_run_dir

    resolved[RUNTIME_KEY] = runtime.to_dict()  # what it trained with (read back as information only)
    config_text = yaml.safe_dump(resolved, sort_keys=False)
    results = payload = None
    if resuming:
        remove_stale_temp_files(run_dir)  # left by a kill in the middle of a write
        payload, results = resume_state(run_dir, read_checkpoint)
        if results is not None and results.method != method.name:
            raise UserError(f"{run_dir} is a run of method {results.method!r}, this config builds {method.name!r}")
        step = payload["global_step"] if payload is not None else 0
        note_resume(run_dir, runtime, f"sample {step}")
    else:
        start_run_dir(run_dir, resolved, command, runtime)

    learner = ClassificationLearner(tasks, model, train=train, device=device, seed=cfg.seed, logger=None,
                                    extra={"config": resolved})
    from ..continual import DriftProbe

    drift = DriftProbe(cfg.drift_samples)
    tasks_done = None
    if payload is not None:
        tasks_done = learner.restore(payload, method)
        drift.load_state_dict(payload.get("drift"))
    mirror = None
    if cfg.wandb.project:
        from ..logging.mirror import WandbMirror

        mirror = WandbMirror(cfg.wandb, run_dir, config=resolved, resume=payload is not None)
    logger = RunLogger(run_dir / "tb", purge_step=learner.global_step if payload is not None else None,
                       mirror=mirror)
    learner.logger = logger
    if not resuming:
        logger.text("config", "```\n" + config_text + "```")
    n_params = sum(p.numel() for p in model.trunk.parameters())
    say(f"{cfg.benchmark}: {len(tasks)} tasks ({', '.join(learner.task_names)}), method {cfg.method} "
          f"{method_options or ''}, {arch} trunk of {n_params:,} parameters, device {device}, "
          f"up to {cfg.epochs} epochs per task; run dir {run_dir}")
    if resuming:
        say(f"resuming {run_dir} at sample {learner.global_step} ({tasks_done or 0} of {len(tasks)} tasks done)")
    from ..continual.driver import drive

    results = drive(learner, method, logger, run_dir=run_dir, budget=cfg.epochs, on_message=say, results=results,
                    tasks_done=tasks_done, drift=drift, seed=cfg.seed, keep=cfg.keep_checkpoints)
    return results, [learner.epochs_run.get(k, 0) for k in range(len(tasks))]


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``classify`` subcommand to a ``blip-rl`` parser's subparsers; returns it."""
    from .datasets import BENCHMARKS

    p = subparsers.add_parser(
        "classify",
        help="continual image classification benchmark (MNIST-5, P-MNIST, CIFAR-10/100, ...)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from ..flags import DEVICE_HELP, SEED_HELP, THREADS_HELP
    from ..core import METHODS

    p.add_argument("--benchmark", choices=sorted(BENCHMARKS), help="task sequence (a new run)")
    p.add_argument("--method", help=f"a registered method ({', '.join(sorted(METHODS))}) or package.module:Class "
                                    "(options: --set methods.NAME.KEY=VALUE)")
    p.add_argument("--data-dir", default=None,
                   help="folder of the dataset files (see blip_rl/classification/datasets.py; not for digits)")
    p.add_argument("--config", default=None,
                   help="YAML config (default: configs/classification/<benchmark>.yaml)")
    p.add_argument("--run-dir", help="new (or empty) folder for results, checkpoints, logs")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped classify run from its last checkpoint")
    p.add_argument("--epochs", type=int, default=None, help="most epochs per task (config: epochs)")
    p.add_argument("--seed", type=int, default=None, help=f"{SEED_HELP} (config: seed; default {DEFAULT_SEED})")
    p.add_argument("--f-prior", type=float, default=None,
                   help="BLIP's F_prior on the true per-sample Fisher (config: methods.blip.f_prior)")
    p.add_argument("--device", choices=DEVICES, default=None, help=f"{DEVICE_HELP} (config: device; default auto)")
    p.add_argument("--precision", choices=("auto", "fp32"), default=None,
                   help="auto | fp32: classification trains in fp32 (its nets are small), so auto is fp32")
    p.add_argument("--threads", type=int, default=None,
                   help=f"{THREADS_HELP} (config: threads; default: every core this process may use, capped by "
                        "OMP_NUM_THREADS / SLURM_CPUS_PER_TASK)")
    p.add_argument("--wandb", metavar="PROJECT", help="mirror the run to this Weights & Biases project (the wandb "
                                                      "extra; config: wandb.project)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.lr=0.01 --set model.hidden=200 (repeatable)")
    p.set_defaults(func=run_classify)
    return p
