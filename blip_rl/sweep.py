"""``blip-rl sweep``: methods x seeds of ``blip-rl train`` as Ray tasks, one run dir each.

Ray is the engine (``pip install blip-rl[ray]``): without ``--address`` a local Ray starts on
this machine; with one, the sweep joins that cluster. Each run is one Ray task that runs
``blip-rl train`` in a subprocess; a run that fails is retried from its last checkpoint with
``blip-rl train --resume`` (the task itself is also retried by Ray if its worker dies).
Re-running the same sweep command continues an interrupted sweep: finished runs are kept,
unfinished ones resume. The same command with other ``--seeds`` adds seeds to it (or runs a part
of it); anything else given the same ``--out`` is refused.
"""
from __future__ import annotations

from .errors import UserError

import argparse
import itertools
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from .io import atomic_write_json, atomic_write_text

__all__ = ["register", "plan_runs", "run_sweep"]

#: Config keys the sweep decides once for every run (as --device, --precision, --threads).
RUNTIME_CONFIG_KEYS = ("device", "precision", "threads")


def _require_ray():
    from .errors import require

    return require("ray", extra="ray", purpose="blip-rl sweep")


def parse_grid(entries: list[str] | None, methods: list[str]) -> dict[str, list[tuple[str, str]]]:
    """``--grid methods.NAME.KEY=V1,V2`` entries as, per method, its option keys and values:
    ``{"ewc": [("ewc_lambda", "500"), ...]}``, each list one axis. A grid names a method's options
    only (the report tells runs apart by them); the method must be one of ``--methods``."""
    axes: dict[str, dict[str, list[str]]] = {}
    for entry in entries or []:
        key, eq, values = str(entry).partition("=")
        head, _, rest = key.strip().partition(".")
        method, dot, option = rest.rpartition(".")  # the last dot: methods.pkg.mod:Class.strength
        if not eq or head != "methods" or not dot or not method or not option:
            raise UserError(f"--grid {entry!r}: give a method option and its values, e.g. "
                             "--grid methods.ewc.ewc_lambda=500,5000,50000 (other keys: one sweep per value, "
                             "with --set)")
        if method not in methods:
            raise UserError(f"--grid {entry!r} is an option of {method}, which is not in --methods "
                             f"({','.join(methods)}); add it there or drop the grid")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not vals or len(set(vals)) != len(vals):
            raise UserError(f"--grid {entry!r}: give distinct values, comma-separated, e.g. {key}=0.1,1,10")
        bad = [v for v in vals if not re.fullmatch(r"[A-Za-z0-9_.+-]+", v)]
        if bad:
            raise UserError(f"--grid {entry!r}: {bad[0]!r} is not a plain value (letters, digits, . + - _); "
                             "it names the run's dir")
        if option in axes.setdefault(method, {}):
            raise UserError(f"--grid names {method}'s {option} twice; give its values once, comma-separated")
        axes[method][option] = vals
    return {m: [(k, v) for k, vs in opts.items() for v in vs] for m, opts in axes.items()}


def _grid_points(axes: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Every combination of one value per option key (the grid's points; [[]] without a grid)."""
    keys = list(dict.fromkeys(k for k, _ in axes))
    return [list(zip(keys, combo)) for combo in itertools.product(*[[v for k, v in axes if k == key] for key in keys])]


def plan_runs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One entry per (method, grid point, seed): its run dir and the ``blip-rl train`` arguments."""
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds takes comma-separated integers, e.g. 1,2,3; got {args.seeds!r}") from None
    if not methods or not seeds:
        raise UserError("give at least one method and one seed, e.g. --methods blip,ft --seeds 1,2")
    if len(set(methods)) != len(methods) or len(set(seeds)) != len(seeds):
        raise UserError("--methods and --seeds must not repeat an entry")
    from .core import resolve_method

    for m in methods:
        resolve_method(m)  # a registered name or package.module:Class; the error says what to do
    from .commands.common import given_config_flags

    common: list[str] = []
    for flag, value in given_config_flags(args):  # train's own flags, declared once in commands/common.py
        if flag in ("--device", "--precision", "--fast") or (
                flag == "--set" and str(value).partition("=")[0].strip() in RUNTIME_CONFIG_KEYS):
            continue  # the sweep's one decision (resolve_sweep_runtime) is passed to every run at launch
        if flag == "--config":
            common += [flag, str(Path(value).resolve())]
        else:
            common += [flag, str(value)]
    out = Path(args.out).resolve()
    given_sets = [str(v).partition("=")[0].strip() for f, v in given_config_flags(args) if f == "--set"]
    if getattr(args, "wandb", None) and "wandb.group" not in given_sets:
        common += ["--set", f"wandb.group={out.name}"]  # the sweep's runs as one W&B group

    grid = parse_grid(getattr(args, "grid", None), methods)
    for m, axes in grid.items():
        for k in dict.fromkeys(k for k, _ in axes):
            if f"methods.{m}.{k}" in given_sets:
                raise UserError(f"methods.{m}.{k} is in --grid and in --set; give it in one of them")

    def dirname(m: str, point: list[tuple[str, str]]) -> str:  # package.module:Class -> package.module.Class
        return "-".join([m.replace(":", "."), *(f"{k}={v}" for k, v in point)])

    runs = []  # seed by seed: a sweep stopped part way has every method and point at its first seeds
    for s in seeds:
        for m in methods:
            for point in _grid_points(grid.get(m, [])):
                sets = [a for k, v in point for a in ("--set", f"methods.{m}.{k}={v}")]
                name = f"{dirname(m, point)}-s{s}"
                runs.append({"name": name, "method": m, "seed": s, "run_dir": str(out / name),
                             "options": dict(point),
                             "args": ["--method", m, "--seed", str(s), *common, *sets, "--no-progress"]})
    return runs


def _sweep_config(args: argparse.Namespace, runs: list[dict[str, Any]]):
    """The config every run of the sweep starts from (method and seed aside), checked here, and
    with each grid point's options (a bad value is found before anything starts)."""
    from .commands.common import train_overrides
    from .config import load_config, parse_assignments

    overrides = train_overrides(args)
    cfg = load_config(args.config, overrides)
    seen: dict[tuple, str] = {}
    for run in runs:
        if run["options"]:
            point = parse_assignments([f"methods.{run['method']}.{k}={v}" for k, v in run["options"].items()])
            typed = load_config(args.config, {**overrides, **point, "method": run["method"]}).method_kwargs()
            same = (run["method"], run["seed"], repr(sorted(typed.items())))
            if same in seen:  # 1 and 1.0: one point written twice
                raise UserError(f"--grid gives {seen[same]} and {run['name']} the same options; give each value once")
            seen[same] = run["name"]
    return cfg


def _resolve(device: str, precision: str, threads: int, n_envs: int, cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """Device, precision and threads for one run of the sweep, where that run would train."""
    from .runtime import resolve, run_workload
    from .config import TrainConfig, merge

    cfg = merge(TrainConfig(), cfg_dict)
    return resolve(device=device, precision=precision, threads=threads, n_envs=n_envs,
                   workload=run_workload(cfg)).to_dict()


def resolve_sweep_runtime(args: argparse.Namespace, cfg, ray=None) -> dict[str, Any]:
    """Decide device, precision and threads once for the whole sweep, so that every run trains
    the same way (each gets them as explicit flags). Locally this is decided here, with a run's
    threads (``--cpus-per-run``); on a cluster (``--address``) by one Ray task with a run's
    resources, on a machine the runs land on. A continued sweep keeps what it decided first."""
    from .config import to_dict

    per_run = args.cpus_per_run or 1
    # auto: a GPU only where the runs reserve one (Ray hides the GPUs from tasks that reserve none).
    device = cfg.device if cfg.device != "auto" else ("cuda" if args.gpus_per_run else "cpu")
    call = (device, cfg.precision, per_run, cfg.env.n_envs,
            {k: v for k, v in to_dict(cfg).items() if k in ("features_dim", "env", "ppo")})
    if ray is None:
        return _resolve(*call)
    task = ray.remote(num_cpus=per_run, num_gpus=args.gpus_per_run or 0)(_resolve)
    try:
        runtime = ray.get(task.remote(*call))
    except Exception as exc:  # a RayTaskError: the UserError raised on the worker is its cause
        cause = getattr(exc, "cause", None)
        if isinstance(cause, UserError):
            raise UserError(str(cause)) from None
        raise
    for warning in runtime.get("warnings") or []:  # the worker's stderr does not reach the driver
        print(f"blip-rl: warning: {warning}", file=sys.stderr)
    return runtime


def _runtime_flags(runtime: dict[str, Any]) -> list[str]:
    return ["--device", runtime["device"], "--precision", runtime["precision"],
            "--threads", str(runtime["torch_threads"])]


def _run_one(run: dict[str, Any], retries: int) -> dict[str, Any]:
    """Train one run in a subprocess; on failure resume it from its checkpoint, ``retries`` times."""
    run_dir = Path(run["run_dir"])
    attempts, log_lines = 0, []
    status = "failed"
    while attempts <= retries:
        attempts += 1
        started = (run_dir / "config.yaml").is_file()
        argv = ["train", "--resume", str(run_dir), "--no-progress"] if started else \
            ["train", *run["args"], "--run-dir", str(run_dir)]
        proc = subprocess.run([sys.executable, "-m", "blip_rl.cli", *argv], capture_output=True, text=True)
        log_lines.append(f"$ blip-rl {shlex.join(argv)}\n[exit {proc.returncode}]\n{proc.stdout}{proc.stderr}")
        if proc.returncode == 0:
            status = "done"
            break
        if proc.returncode == 2 and not started:
            status = "invalid"  # a usage error: retrying cannot help
            break
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "sweep.log", "\n".join(log_lines))
    result = {"name": run["name"], "status": status, "attempts": attempts, "run_dir": str(run_dir)}
    if (run_dir / "results.json").is_file():
        res = json.loads((run_dir / "results.json").read_text())
        result.update(acc=res.get("acc"), bwt=res.get("bwt"))
    return result


def _points(run_args: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each run's method and grid point (its name without ``-sN``) -> its arguments without the seed."""
    def unseeded(argv: list[str]) -> list[str]:
        i = argv.index("--seed") if "--seed" in argv else len(argv)
        return argv[:i] + argv[i + 2:]

    return {name.rpartition("-s")[0]: unseeded(list(a)) for name, a in run_args.items()}


def _continues(before: dict[str, Any], plan: dict[str, Any]) -> bool:
    """Whether ``plan`` carries on the sweep recorded as ``before``: the same methods, grid points,
    config and flags, and the same runtime request; only the seeds may differ (a study's first
    seeds now, the rest later). Runs of both are then the very same runs."""
    if not before.get("args") or before.get("requested", plan["requested"]) != plan["requested"]:
        return False
    return _points(before["args"]) == _points(plan["args"])


#: The format of sweep.yaml's ``config`` record; a record of another format is compared on the
#: keys both hold (an upgrade of blip-rl changing what is recorded does not refuse a sweep).
CONFIG_RECORD_FORMAT = 1


def _config_record(cfg, runs: list[dict[str, Any]]) -> dict[str, str]:
    """What every run starts from, flattened (``ppo.n_steps``) and each value as YAML text: the
    config without the keys each run is given (method, seed) or the sweep decides at launch
    (device, precision, threads), and, for each method of the sweep only, every option it reads
    (defaults too, typed: 5000 and 5000.0 alike) but those its --grid sets per run. Recorded so
    that a continued sweep can tell an edited config file or a changed default."""
    from .config import to_dict
    from .core.methods import check_options, resolve_method

    data = to_dict(cfg)
    for key in ("method", "seed", *RUNTIME_CONFIG_KEYS):
        data.pop(key, None)
    gridded: dict[str, set[str]] = {}
    for run in runs:
        gridded.setdefault(run["method"], set()).update(run["options"])
    methods = {}
    for name, grid_keys in gridded.items():
        try:  # typed as the method reads them
            options = check_options(resolve_method(name), cfg.options_of(name))
        except Exception:  # noqa: BLE001 - checked in _sweep_config already; kept as written
            options = cfg.options_of(name)
        methods[name] = {k: v for k, v in options.items() if k not in grid_keys}
    data["methods"] = methods
    flat: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:  # as text: nested tuples, NaN and floats compare as they were written
            flat[prefix] = yaml.safe_dump(_plain(value), default_flow_style=True).strip().removesuffix("...").strip()

    walk("", data)
    return flat


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _changed_keys(before: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for each key of the config record that differs."""
    old, now = before.get("config") or {}, plan["config"]
    if before.get("config_format") != plan["config_format"]:
        keys = sorted(set(old) & set(now))  # another blip-rl's record: the keys both hold
    else:
        keys = sorted(set(old) | set(now))
    return [f"{k}: {old.get(k, '(unset)')} -> {now.get(k, '(unset)')}" for k in keys if old.get(k) != now.get(k)]


def run_sweep(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    runs = plan_runs(args)
    out = Path(args.out)
    from .commands.common import precision_flag

    cfg = _sweep_config(args, runs)  # the whole config checked before anything is written or started
    plan = {"command": shlex.join(["blip-rl", *argv]), "runs": [r["name"] for r in runs],
            "args": {r["name"]: r["args"] for r in runs},
            "requested": {"device": cfg.device, "precision": precision_flag(args) or cfg.precision,
                          "cpus_per_run": args.cpus_per_run or 1, "gpus_per_run": args.gpus_per_run or 0}}
    plan["config_format"] = CONFIG_RECORD_FORMAT
    plan["config"] = _config_record(cfg, runs)
    before: dict[str, Any] = {}
    if out.exists() and any(out.iterdir()):
        previous = out / "sweep.yaml"
        before = yaml.safe_load(previous.read_text()) if previous.is_file() else {}
        if not _continues(before, plan):
            raise UserError(f"{out} already holds other work; give a new --out (a sweep continues only with the "
                             "very same options, or the same with other --seeds)")
        if "config" not in before:
            print(f"blip-rl: note: {previous} predates the config record; the config is recorded from now on, "
                  "so an edit made before this continuation goes unnoticed", file=sys.stderr)
        changed = _changed_keys(before, plan)
        if changed:  # the same flags, but the config file they name was edited since the sweep started
            more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
            raise UserError(f"{out} was started with another config ({'; '.join(changed[:3])}{more}): its runs "
                            "would mix two setups. Restore the config file, or give a new --out")
        # Seeds added to (or left out of) a sweep: the record keeps every run it has planned.
        plan["args"] = {**before["args"], **plan["args"]}
        plan["runs"] = list(plan["args"])
        plan["commands"] = [*before.get("commands", [before["command"]] if before.get("command") else []),
                            plan["command"]]
    previous_runtime = (before or {}).get("runtime")  # sweep.yaml read once, above
    ray = _require_ray()
    init_kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if args.address:
        init_kwargs["address"] = args.address
    else:
        # The cores this process may use (affinity, cgroup quota), not the machine's count:
        # Ray then runs at most cores // cpus_per_run trainings at once, none oversubscribed.
        from .system import usable_cores

        cores = usable_cores()
        num_cpus = args.num_cpus or cores
        per_run = args.cpus_per_run or 1
        if per_run > num_cpus:
            raise UserError(f"--cpus-per-run {per_run} is more than the {num_cpus} CPUs of the local Ray; give at "
                             f"most {num_cpus}")
        init_kwargs["num_cpus"] = num_cpus
        print(f"local Ray with {num_cpus} CPUs: up to {num_cpus // per_run} runs at once, {per_run} threads each")
    ray.init(**init_kwargs)
    from .system import same_cpu_kind

    try:
        # One decision for every run: kept from the sweep's start when it is continued.
        # (On a cluster the runs' machines decided it: kept; locally, unless this is another machine.)
        if previous_runtime and (args.address or same_cpu_kind(previous_runtime.get("cpu"))):
            runtime = previous_runtime
        else:
            runtime = resolve_sweep_runtime(args, cfg, ray if args.address else None)
            decided = ("device", "precision", "torch_threads")
            if previous_runtime and any(runtime.get(k) != previous_runtime.get(k) for k in decided):
                was, now = (", ".join(f"{r.get(k)}" for k in decided) for r in (previous_runtime, runtime))
                raise UserError(f"{out}'s runs trained with {was} (device, precision, threads); on this machine "
                                f"the sweep would decide {now}, and its runs would mix the two. Give --device, "
                                "--precision and --threads as before, or a new --out")
        print(f"every run: {runtime['device']}, {runtime['precision']} ({runtime['precision_reason']}), "
              f"{runtime['torch_threads']} threads", flush=True)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "sweep.yaml", yaml.safe_dump({**plan, "runtime": runtime}, sort_keys=False))
        for r in runs:
            r["args"] = [*r["args"], *_runtime_flags(runtime)]
        remote = ray.remote(num_cpus=args.cpus_per_run or 1, num_gpus=args.gpus_per_run or 0,
                            max_retries=args.retries)(_run_one)
        pending = {remote.remote(r, args.retries): r["name"] for r in runs}
        results = []
        t0 = time.time()
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            name = pending.pop(done[0])
            try:
                res = ray.get(done[0])
            except Exception as exc:  # the task died more often than Ray retries it
                res = {"name": name, "status": "failed", "error": str(exc)}
            results.append(res)
            print(f"[{time.time() - t0:7.0f}s] {name}: {res['status']}"
                  + (f"  ACC {res['acc']:.3f}" if res.get("acc") is not None else "")
                  + (f"  BWT {res['bwt']:.3f}" if res.get("bwt") is not None else ""), flush=True)
    finally:
        ray.shutdown()
    # sweep.json: every run of the sweep, this command's results over those of earlier ones
    earlier = {}
    if (out / "sweep.json").is_file():
        earlier = {r["name"]: r for r in json.loads((out / "sweep.json").read_text()).get("runs", [])}
    merged = {**earlier, **{r["name"]: r for r in results}}
    summary = {"runtime": runtime, "runs": sorted(merged.values(), key=lambda r: r["name"]),
               "this_command": sorted(r["name"] for r in results)}
    atomic_write_json(out / "sweep.json", summary)
    return summary


def _cmd_sweep(args: argparse.Namespace, argv: list[str]) -> int:
    summary = run_sweep(args, argv)
    ran = [r for r in summary["runs"] if r["name"] in set(summary["this_command"])]
    failed = [r["name"] for r in ran if r["status"] != "done"]
    print(f"\n{len(ran) - len(failed)} of {len(ran)} runs done; summary {Path(args.out) / 'sweep.json'}"
          + (f" (with {len(summary['runs']) - len(ran)} runs of earlier commands)" if len(ran) < len(summary["runs"]) else ""))
    print(f"Figures and tables: blip-rl report {' '.join(r['run_dir'] for r in ran)} "
          f"--out {Path(args.out) / 'report'}")
    if failed:
        print(f"failed: {', '.join(failed)} (see <run dir>/sweep.log; re-run the same command to retry)",
              file=sys.stderr)
        return 1
    return 0


def register(sub) -> None:
    s = sub.add_parser("sweep", help="methods x seeds of `train` as Ray tasks (local Ray or a cluster)")
    s.add_argument("--methods", required=True, help="comma-separated, e.g. blip,ewc,ft")
    s.add_argument("--seeds", required=True, help="comma-separated integers, e.g. 1,2,3")
    s.add_argument("--out", required=True, help="sweep dir: one run dir per method and seed")
    s.add_argument("--address", help="join a Ray cluster (auto, or ray://HOST:PORT); default: local Ray")
    s.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (default: the cores this process may use)")
    s.add_argument("--cpus-per-run", type=int, default=1, help="CPUs each run reserves (and torch threads)")
    s.add_argument("--gpus-per-run", type=float, default=0, help="GPUs each run reserves (e.g. 1, or 0.5)")
    s.add_argument("--retries", type=int, default=2, help="resumes of a failed run from its checkpoint")
    s.add_argument("--grid", action="append", metavar="methods.NAME.KEY=V1,V2",
                   help="runs of NAME at each value (repeat for more keys: every combination), e.g. "
                        "methods.ewc.ewc_lambda=500,5000; a run dir per point: ewc-ewc_lambda=500-s1")
    from .commands.common import add_config_flags

    add_config_flags(s, skip=("--method", "--seed"))  # every other train flag passes through to each run
    s.set_defaults(func=_cmd_sweep)
