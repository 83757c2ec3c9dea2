"""Copy a study's small outputs into the repository: each finished run's files and the report.

    python studies/collect.py OUT DEST [--report REPORT_DIR] [--runs-glob 'sweep/*-s*']

For every finished run dir under ``OUT`` (a ``config.yaml`` and a ``results.json`` holding every
task), copies ``config.yaml``, ``command.txt``, ``results.json`` and ``system_info.txt`` to
``DEST/<its path under OUT>`` (checkpoints and TensorBoard files stay behind: ``blip-rl report``
over the copies gives the same tables, without the bit heatmaps, which need the checkpoints).
With ``--report``, the report's ``table.md``, ``table.tex``, ``summary.json`` and figures go to
``DEST/report``. Writes ``DEST/runs.md``: each run, its wall time (training, evaluation,
checkpoints, consolidation, as ``results.json`` records them) and the machine it ran on.
Unfinished runs are listed as such and not copied. Nothing under ``OUT`` is changed.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

RUN_FILES = ("config.yaml", "command.txt", "results.json", "system_info.txt")
REPORT_FILES = ("table.md", "table.tex", "summary.json")


def finished(run_dir: Path) -> bool | None:
    """True: every task learned; False: started, not finished; None: not a run dir."""
    if not (run_dir / "config.yaml").is_file():
        return None
    if not (run_dir / "results.json").is_file():
        return False
    results = json.loads((run_dir / "results.json").read_text())
    return results.get("tasks_learned", 0) >= len(results.get("tasks", [None]))


def machine(run_dir: Path) -> str:
    """The CPU line of the run's first ``system_info.txt`` block."""
    info = run_dir / "system_info.txt"
    for line in info.read_text().splitlines() if info.is_file() else []:
        if line.lower().startswith(("cpu:", "processor:", "cpu ")):
            return line.split(":", 1)[-1].strip()
    return "?"


def collect(out: Path, dest: Path, report: Path | None = None, runs_glob: str = "**/*") -> list[dict]:
    rows = []
    for run_dir in sorted(p for p in out.glob(runs_glob) if p.is_dir()):
        state = finished(run_dir)
        if state is None:
            continue
        rel = run_dir.relative_to(out)
        row = {"run": str(rel), "finished": state}
        if state:
            target = dest / rel
            target.mkdir(parents=True, exist_ok=True)
            for name in RUN_FILES:
                if (run_dir / name).is_file():
                    shutil.copy2(run_dir / name, target / name)
            results = json.loads((run_dir / "results.json").read_text())
            row.update(seconds=sum((results.get("time_s") or {}).values()), machine=machine(run_dir),
                       acc=results.get("acc"), bwt=results.get("bwt"))
        rows.append(row)
    if report is not None:
        target = dest / "report"
        target.mkdir(parents=True, exist_ok=True)
        for path in [*(report / n for n in REPORT_FILES), *sorted(report.glob("*.png"))]:
            if path.is_file():
                shutil.copy2(path, target / path.name)
    lines = ["| run | finished | wall time | ACC | BWT | machine |", "|---|---|---:|---:|---:|---|"]
    for r in rows:
        if r["finished"]:
            minutes = f"{r['seconds'] / 60:.1f} min"
            acc = "n/a" if r["acc"] is None else f"{r['acc']:.3f}"
            bwt = "n/a" if r["bwt"] is None else f"{r['bwt']:.3f}"
            lines.append(f"| {r['run']} | yes | {minutes} | {acc} | {bwt} | {r['machine']} |")
        else:
            lines.append(f"| {r['run']} | not yet | | | | |")
    done = [r for r in rows if r["finished"]]
    total = sum(r["seconds"] for r in done) / 3600
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "runs.md").write_text(f"{len(done)} of {len(rows)} runs finished; {total:.1f} h of run time "
                                  "(the sum over runs)\n\n"
                                  + "\n".join(lines) + "\n")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the study's OUT dir (run dirs anywhere below it)")
    parser.add_argument("dest", help="where the copies go, e.g. studies/results/minatar3")
    parser.add_argument("--report", help="a `blip-rl report` dir whose tables and figures to copy")
    parser.add_argument("--runs-glob", default="**/*", help="run dirs under OUT to take (default: all)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if not out.is_dir():
        print(f"no {out}: give the study's OUT dir", file=sys.stderr)
        return 2
    report = Path(args.report) if args.report else None
    if report is not None and not (report / "summary.json").is_file():
        print(f"{report} is not a report dir (no summary.json): make it with blip-rl report ... --out DIR",
              file=sys.stderr)
        return 2
    rows = collect(out, Path(args.dest), report, args.runs_glob)
    print(f"{sum(r['finished'] for r in rows)} of {len(rows)} runs finished; copied to {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
