"""studies/: the tuning choice (studies/choose.py) and the study scripts' own checks."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "studies"))
import choose  # noqa: E402


def _row(method, options, values, seeds=(100,)):
    mean = sum(values) / len(values)
    return {"method": method, "options": options, "seeds": list(seeds),
            "acc": {"values": values, "mean": mean, "std": 0.0, "ci95": [min(values), max(values)]}}


SUMMARY = {"games": ["minatar-spaceinvaders", "minatar-asterix"], "methods": {
    "blip": _row("blip", {"f_prior": 1e-14, "consolidation": "keep"}, [0.5]),
    "ewc (ewc_lambda=500.0)": _row("ewc", {"ewc_lambda": 500.0, "gamma": 1.0}, [0.2, 0.4]),
    "ewc (ewc_lambda=5000.0)": _row("ewc", {"ewc_lambda": 5000.0, "gamma": 1.0}, [0.6, 0.4]),
    "ewc (ewc_lambda=50000.0)": _row("ewc", {"ewc_lambda": 50000.0, "gamma": 1.0}, [0.5, 0.5]),
    "l2 (strength=0.1)": _row("l2", {"strength": 0.1}, [0.3]),
    "l2 (strength=1.0)": _row("l2", {"strength": 1.0}, [0.3]),
}}


def test_the_point_with_the_highest_mean_is_chosen_and_only_grid_keys_are_named():
    result = choose.choose(SUMMARY)
    assert result["chosen"] == {"ewc": {"ewc_lambda": 5000.0}, "l2": {"strength": 0.1}}  # a tie: the first row
    assert "blip" not in result["grid"]  # one point: nothing tuned
    assert [p["mean"] for p in result["grid"]["ewc"]] == [pytest.approx(0.3), 0.5, 0.5]
    assert result["seeds"] == [100] and result["games"] == SUMMARY["games"]
    assert choose.set_flags(result["chosen"]) == ["--set methods.ewc.ewc_lambda=5000.0",
                                                  "--set methods.l2.strength=0.1"]
    table = choose.markdown(result)
    assert "| ewc | ewc_lambda=5000.0 | 0.500 | [0.400, 0.600] | yes |" in table  # inside the grid
    assert result["at_edge"] == {} and "edge" not in table  # l2 has two points: no inside


def test_choose_writes_the_choice_and_prints_the_flags(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps(SUMMARY))
    out = subprocess.run([sys.executable, str(ROOT / "studies" / "choose.py"), str(tmp_path / "summary.json"),
                          "--out", str(tmp_path / "c" / "chosen.json")], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[0] == "--set methods.ewc.ewc_lambda=5000.0"
    assert json.loads((tmp_path / "c" / "chosen.json").read_text())["chosen"]["l2"] == {"strength": 0.1}
    assert (tmp_path / "c" / "chosen.md").read_text().startswith("Tuning on minatar-spaceinvaders -> minatar-asterix")
    missing = subprocess.run([sys.executable, str(ROOT / "studies" / "choose.py"), str(tmp_path / "none.json"),
                              "--out", str(tmp_path / "x.json")], capture_output=True, text=True)
    assert missing.returncode == 2 and "make the tuning report first" in missing.stderr


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "studies").glob("*.sh")))
def test_every_study_script_is_valid_bash(script):
    subprocess.run(["bash", "-n", str(ROOT / "studies" / script)], check=True)


def _fake_run(run_dir, *, tasks_learned, n_tasks=2):
    import yaml

    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"method": "ft", "seed": 1, "games": ["a", "b"][:n_tasks]}))
    (run_dir / "command.txt").write_text("blip-rl train ...\n")
    (run_dir / "system_info.txt").write_text("blip-rl 0.1.0\ncpu: Some CPU; 2 usable cores of 2 logical\n")
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "latest.pt").write_bytes(b"big")
    if tasks_learned:
        (run_dir / "results.json").write_text(json.dumps({"tasks": ["a", "b"][:n_tasks], "tasks_learned": tasks_learned,
                                                          "acc": 0.5, "bwt": -0.1,
                                                          "time_s": {"training": 90.0, "evaluation": 30.0}}))


def test_collect_copies_finished_runs_small_files_and_lists_the_rest(tmp_path):
    import collect

    out = tmp_path / "out"
    _fake_run(out / "sweep" / "ft-s1", tasks_learned=2)
    _fake_run(out / "sweep" / "ft-s2", tasks_learned=1)  # unfinished: listed, not copied
    report = out / "report"
    report.mkdir()
    for name in ("summary.json", "table.md", "per_game.png"):
        (report / name).write_text("x")
    rows = collect.collect(out, tmp_path / "dest", report)
    assert [(r["run"], r["finished"]) for r in rows] == [("sweep/ft-s1", True), ("sweep/ft-s2", False)]
    copied = sorted(p.name for p in (tmp_path / "dest" / "sweep" / "ft-s1").iterdir())
    assert copied == ["command.txt", "config.yaml", "results.json", "system_info.txt"]  # no checkpoints
    assert not (tmp_path / "dest" / "sweep" / "ft-s2").exists()
    assert sorted(p.name for p in (tmp_path / "dest" / "report").iterdir()) == ["per_game.png", "summary.json",
                                                                                "table.md"]
    runs = (tmp_path / "dest" / "runs.md").read_text()
    assert "1 of 2 runs finished" in runs and "| sweep/ft-s1 | yes | 2.0 min | 0.500 | -0.100 | Some CPU" in runs
    assert "| sweep/ft-s2 | not yet |" in runs
    assert (out / "sweep" / "ft-s1" / "checkpoints" / "latest.pt").is_file()  # nothing under OUT changed


def _committed(study: Path, run: str) -> Path:
    """The committed copy of a run a summary names by the path it had when the report was made:
    under the study, or beside it (a widened tuning's report also covers the first grid's runs)."""
    parts = Path(run).parts
    for base in (study, study.parent):
        for n in (3, 2, 1):
            candidate = base.joinpath(*parts[-n:])
            if (candidate / "results.json").is_file():
                return candidate
    raise AssertionError(f"{run}: no committed copy under {study} or beside it")


SUMMARIES = sorted((ROOT / "studies" / "results").glob("**/report/summary.json"))


@pytest.mark.parametrize("summary_path", SUMMARIES, ids=lambda p: p.parent.parent.name)
def test_every_committed_summary_is_what_the_committed_runs_give(summary_path, tmp_path):
    """Each number of a study's summary.json (the tables in docs/results.md come from these) is
    regenerated by `blip-rl report` from the run files committed beside it."""
    pytest.importorskip("matplotlib")
    from blip_rl.report import make_report

    study = summary_path.parent.parent
    committed = json.loads(summary_path.read_text())
    runs = [_committed(study, r) for row in committed["methods"].values() for r in row["runs"]]
    refs = sorted(study.glob("reference-*/*-s*")) if "reference_auc" in committed else None
    again = make_report(runs, tmp_path / "again", references=refs)["summary"]
    assert list(again["methods"]) == list(committed["methods"])
    for label, row in committed["methods"].items():
        for key, stat in row.items():
            if isinstance(stat, dict) and "mean" in stat:
                assert again["methods"][label][key]["mean"] == pytest.approx(stat["mean"], nan_ok=True), (label, key)


def _numbers_of(value, out):
    if isinstance(value, bool):
        return out
    if isinstance(value, (int, float)):
        out.update({f"{value:.3f}", f"{value:.4f}", f"{value:.2f}"})
    elif isinstance(value, dict):
        for v in value.values():
            _numbers_of(v, out)
    elif isinstance(value, list):
        for v in value:
            _numbers_of(v, out)
    return out


def test_every_number_in_the_readme_results_tables_is_in_a_committed_summary():
    import re

    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Results\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|") and not set(line) <= set("|-: ")]
    numbers = {n.replace("\u2212", "-") for line in rows[1:] if not line.startswith("| method")
               for n in re.findall(r"[\u2212-]?\d+\.\d+", line)}
    assert numbers, "the README's results section has no table"
    known = set()
    for path in (ROOT / "studies" / "results").glob("*/report/summary.json"):
        _numbers_of(json.loads(path.read_text())["methods"], known)
    missing = sorted(n for n in numbers if n not in known)
    assert not missing, f"README numbers found in no committed summary.json: {missing}"


def test_a_one_seed_tuning_is_chosen_from_and_written(tmp_path):
    """The study tunes on one seed: no interval (ci95 None), still a choice and a table."""
    one = {"games": ["a", "b"], "methods": {
        "l2 (strength=0.1)": {**_row("l2", {"strength": 0.1}, [0.3]), "acc": {"values": [0.3], "mean": 0.3,
                                                                             "std": None, "ci95": None}},
        "l2 (strength=1.0)": {**_row("l2", {"strength": 1.0}, [0.6]), "acc": {"values": [0.6], "mean": 0.6,
                                                                             "std": None, "ci95": None}}}}
    one["methods"]["l2 (strength=10.0)"] = {**_row("l2", {"strength": 10.0}, [0.1]),
                                            "acc": {"values": [0.1], "mean": 0.1, "std": None, "ci95": None}}
    result = choose.choose(one)
    assert result["chosen"] == {"l2": {"strength": 1.0}} and result["at_edge"] == {}
    assert "| l2 | strength=1.0 | 0.600 | n/a | yes |" in choose.markdown(result)
    one["methods"]["l2 (strength=10.0)"]["acc"]["mean"] = 0.9  # the best at the end of the axis: said
    edge = choose.choose(one)
    assert edge["at_edge"] == {"l2": ["strength"]}
    assert "| l2 | strength=10.0 | 0.900 | n/a | yes (grid's edge) |" in choose.markdown(edge)
    none = {"games": ["a", "b"], "methods": {k: {**v, "acc": {"values": [None], "mean": None, "std": None,
                                                              "ci95": None}} for k, v in one["methods"].items()}}
    with pytest.raises(SystemExit, match="nothing to choose"):
        choose.choose(none)


def test_check_reads_the_config_typed_and_names_each_difference(tmp_path):
    (tmp_path / "c.yaml").write_text("games: [minatar-breakout]\nmethods:\n  l2-init: {strength: 1e-3}\n"
                                     "  ewc: {ewc_lambda: 500}\n")
    assert choose.differences(tmp_path / "c.yaml", {"l2-init": {"strength": 0.001}, "ewc": {"ewc_lambda": 500.0}}) == []
    differ = choose.differences(tmp_path / "c.yaml", {"ewc": {"ewc_lambda": 5000.0}, "si": {"strength": 1.0}})
    assert len(differ) == 2 and "methods.ewc.ewc_lambda: tuning chose 5000.0" in differ[0]
    (tmp_path / "chosen.json").write_text(json.dumps({"chosen": {"ewc": {"ewc_lambda": 5000.0}}}))
    out = subprocess.run([sys.executable, str(ROOT / "studies" / "choose.py"), str(tmp_path / "chosen.json"),
                          "--check", str(tmp_path / "c.yaml")], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 1 and "write the chosen values" in out.stderr


def test_the_minatar_configs_hold_the_strengths_tuning_chose():
    """configs/minatar3.yaml and minatar5.yaml (the same first task pair) default to what the
    study's tuning chose (studies/results/minatar3/tuning/chosen.json)."""
    import yaml

    chosen = json.loads((ROOT / "studies" / "results" / "minatar3" / "tuning" / "chosen.json").read_text())
    assert chosen["seeds"] == [100] and chosen["games"] == ["minatar-spaceinvaders", "minatar-asterix"]
    for name in ("minatar3", "minatar5"):
        methods = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())["methods"]
        for method, options in chosen["chosen"].items():
            for key, value in options.items():
                assert methods[method][key] == pytest.approx(value), (name, method, key)
