"""Pick each method's options from a tuning report: the grid point with the highest mean of a metric.

    python studies/choose.py TUNING_REPORT/summary.json --out chosen.json [--metric acc]
    python studies/choose.py --check CONFIG chosen.json      # does CONFIG default to the choice?

``TUNING_REPORT`` is ``blip-rl report`` over a ``blip-rl sweep --grid ...`` (rows such as
``ewc (ewc_lambda=500)``). For every method with more than one row, the options that differ
between its rows are the grid; the row with the highest mean ``--metric`` over its seeds is
chosen (a tie goes to the row the report lists first). Writes ``chosen.json`` (the criterion, the seeds,
every point's mean and 95% interval, the chosen options) and ``chosen.md`` beside it, and prints
the chosen options as ``--set methods.NAME.KEY=VALUE`` flags, one per line, for the next sweep.
``--check`` reads CONFIG as ``blip-rl train`` does (typed: ``1e-3`` is a number) and exits 1,
naming each difference, where its options are not the chosen ones.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def grid_keys(rows: list[dict[str, Any]]) -> list[str]:
    """The option keys whose values differ between ``rows`` (one method's rows)."""
    keys = sorted(set().union(*(r["options"] for r in rows)))
    return [k for k in keys if len({json.dumps(r["options"].get(k)) for r in rows}) > 1]


def choose(summary: dict[str, Any], metric: str = "acc") -> dict[str, Any]:
    by_method: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for label, row in summary["methods"].items():
        if "method" not in row or "options" not in row:
            raise SystemExit(f"{label}: this summary.json has no method/options per row; remake the report "
                             "with this blip-rl (blip-rl report ... --out NEW)")
        if metric not in row:
            raise SystemExit(f"no metric {metric!r} in the summary; it has {', '.join(k for k in row if 'mean' in str(row[k]))}")
        by_method.setdefault(row["method"], []).append((label, row))
    grid: dict[str, Any] = {}
    chosen: dict[str, dict[str, Any]] = {}
    edges: dict[str, list[str]] = {}
    for method, labelled in by_method.items():
        rows = [r for _, r in labelled]
        keys = grid_keys(rows)
        if not keys:
            continue  # one point only: nothing was tuned
        points = [{"options": {k: r["options"].get(k) for k in keys}, "mean": r[metric]["mean"],
                   "ci95": r[metric]["ci95"], "seeds": r["seeds"], "label": label} for label, r in labelled]
        if all(p["mean"] is None for p in points):
            raise SystemExit(f"{method}: no point has a {metric} (unfinished or one-task runs?); nothing to choose")
        best = max(points, key=lambda p: float("-inf") if p["mean"] is None else p["mean"])
        grid[method] = points
        chosen[method] = best["options"]
        for key in keys:  # a choice at the end of a numeric axis: the best may lie beyond the grid
            values = sorted({p["options"][key] for p in points if isinstance(p["options"][key], (int, float))})
            if len(values) > 2 and best["options"][key] in (values[0], values[-1]):
                edges.setdefault(method, []).append(key)
    seeds = sorted({s for r in summary["methods"].values() for s in r["seeds"]})
    return {"criterion": f"highest mean {metric} over the tuning seeds", "metric": metric, "seeds": seeds,
            "games": summary.get("games"), "grid": grid, "chosen": chosen, "at_edge": edges}


def set_flags(chosen: dict[str, dict[str, Any]]) -> list[str]:
    return [f"--set methods.{m}.{k}={v}" for m, opts in chosen.items() for k, v in opts.items()]


def markdown(result: dict[str, Any]) -> str:
    lines = [f"Tuning on {' -> '.join(result['games'] or [])}, seeds {', '.join(map(str, result['seeds']))}; "
             f"chosen: {result['criterion']}.", "",
             f"| method | point | {result['metric']} mean | 95% CI | chosen |", "|---|---|---:|---|:-:|"]
    for method, points in result["grid"].items():
        for p in points:
            point = ", ".join(f"{k}={v}" for k, v in p["options"].items())
            mean = "n/a" if p["mean"] is None else f"{p['mean']:.3f}"
            ci = f"[{p['ci95'][0]:.3f}, {p['ci95'][1]:.3f}]" if p["mean"] is not None and p["ci95"] else "n/a"
            mark = "yes" if p["options"] == result["chosen"][method] else ""
            if mark and result.get("at_edge", {}).get(method):
                mark += " (grid's edge)"
            lines.append(f"| {method} | {point} | {mean} | {ci} | {mark} |")
    edges = result.get("at_edge") or {}
    if edges:
        lines += ["", "At the grid's edge (the best value may lie beyond it: widen the grid there): "
                  + ", ".join(f"{m} {', '.join(keys)}" for m, keys in edges.items()) + "."]
    return "\n".join(lines) + "\n"


def differences(config: str | Path, chosen: dict[str, dict[str, Any]]) -> list[str]:
    """Where ``config``'s typed method options are not ``chosen`` (numbers to a relative 1e-9)."""
    import math

    from blip_rl.config import load_config
    from blip_rl.core import check_options, resolve_method

    cfg = load_config(config)
    out = []
    for method, options in chosen.items():
        typed = check_options(resolve_method(method), cfg.options_of(method))
        for key, value in options.items():
            have = typed.get(key)
            same = (math.isclose(have, value, rel_tol=1e-9) if isinstance(have, (int, float)) and
                    isinstance(value, (int, float)) and not isinstance(have, bool) else have == value)
            if not same:
                out.append(f"methods.{method}.{key}: tuning chose {value}, {config} has {have}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summary", help="summary.json of `blip-rl report` over the tuning runs (with --check: "
                                        "chosen.json)")
    parser.add_argument("--out", help="chosen.json to write (chosen.md beside it)")
    parser.add_argument("--metric", default="acc", help="the summary's metric to maximize (default: acc)")
    parser.add_argument("--check", metavar="CONFIG", help="say whether CONFIG's method options are chosen.json's")
    args = parser.parse_args(argv)
    path = Path(args.summary)
    if args.check:
        if not path.is_file():
            print(f"no {path}: run the tuning first", file=sys.stderr)
            return 2
        differ = differences(args.check, json.loads(path.read_text())["chosen"])
        for line in differ:
            print(line, file=sys.stderr)
        if differ:
            print(f"write the chosen values into {args.check}'s methods: section (or keep the config's "
                  "and say so)", file=sys.stderr)
        return 1 if differ else 0
    if not args.out:
        parser.error("--out is required (or --check CONFIG)")
    if not path.is_file():
        print(f"no {path}: make the tuning report first (blip-rl report RUN_DIRS --out DIR)", file=sys.stderr)
        return 2
    result = choose(json.loads(path.read_text()), args.metric)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print("\n".join(set_flags(result["chosen"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
