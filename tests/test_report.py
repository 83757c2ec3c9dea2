"""`blip-rl report`: figures, table and summary from real tiny runs (2 methods x 2 seeds)."""
import argparse
import importlib.util
import json
import math
import shutil
import statistics
import subprocess
import sys

import pytest
from PIL import Image

from blip_rl import report as rep
from blip_rl.continual import Results
from blip_rl.metrics import accumulated_normalized

needs_mpl = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                               reason="figures need matplotlib: pip install 'blip-rl[report]'")

#: Two games of 64 steps: 32-step rollouts, an evaluation every 32 steps (4 points per run).
TINY = ["--games", "kungfu,boxing", "--steps-per-game", "64", "--n-envs", "1", "--set", "ppo.n_steps=32",
        "--set", "ppo.n_minibatches=1", "--set", "ppo.n_epochs=1", "--eval-episodes", "1",
        "--set", "eval.max_episode_steps=20", "--set", "eval.n_envs=1", "--set", "fisher_samples=32",
        "--set", "features_dim=16", "--set", "eval.every=32", "--threads", "1", "--device", "cpu",
        "--precision", "fp32", "--no-progress"]
METHODS, SEEDS = ("blip", "ft"), (1, 2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{(method, seed): run dir} of four real two-game runs, trained side by side."""
    root = tmp_path_factory.mktemp("runs")
    dirs = {(m, s): root / f"{m}-s{s}" for m in METHODS for s in SEEDS}
    procs = {key: subprocess.Popen([sys.executable, "-m", "blip_rl.cli", "train", *TINY, "--method", key[0],
                                    "--seed", str(key[1]), "--run-dir", str(d)],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for key, d in dirs.items()}
    for key, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, (key, out)
    return dirs


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    return rep.make_report(list(runs.values()), tmp_path_factory.mktemp("rep") / "report")


def _results(run_dir):
    return json.loads((run_dir / "results.json").read_text())


def _copy(run_dir, dest, *, tb=True):
    shutil.copytree(run_dir, dest, ignore=None if tb else shutil.ignore_patterns("tb"))
    return dest


@needs_mpl
def test_every_file_is_written_and_pngs_are_sane(report):
    out = report["out_dir"]
    names = {"accumulated_normalized.png", "per_game.png", "metrics.png", "plasticity.png", "bits_blip.png",
             "table.md", "table.tex", "summary.json"}
    assert {p.name for p in out.iterdir()} == names
    # Fine-tuning freezes no bits: no all-zero heatmap, and the table says why there is none.
    assert report["summary"]["no_frozen_bits"] == ["ft"] and "ft froze none" in report["table"]
    assert {p.name for p in report["files"]} == names
    tex = (out / "table.tex").read_text()
    assert "\\begin{tabular}" in tex and "\\toprule" in tex and "blip & 2 &" in tex and "ft & 2 &" in tex
    for name in names - {"table.md", "table.tex", "summary.json"}:
        with Image.open(out / name) as im:
            assert im.format == "PNG"
            assert 300 <= im.width <= 3000 and 200 <= im.height <= 3000, (name, im.size)
            assert len(im.convert("RGB").getcolors(maxcolors=1 << 20)) > 20, name  # not a blank canvas
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(report["summary"]))
    assert (out / "table.md").read_text() == report["table"]


def _table_rows(table):
    """{method: {column header: cell}} of the report's first (main) table."""
    rows, header = {}, None
    for line in table.split("## ")[0].splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if not line.startswith("| ") or cells[0].startswith("---"):
            continue
        if cells[0] == "method":
            header = cells
        else:
            rows[cells[0]] = dict(zip(header, cells))
    return rows


def _check_numbers(report, runs_by_method):
    summary, rows = report["summary"], _table_rows(report["table"])
    assert list(summary["methods"]) == list(runs_by_method) == list(rows)
    for method, dirs in runs_by_method.items():
        res = [_results(d) for d in dirs]
        expected = {
            "acc": [r["acc"] for r in res],
            "bwt": [r["bwt"] for r in res],
            "accumulated_normalized": [accumulated_normalized(r["normalized"][-1]) for r in res],
        }
        m = summary["methods"][method]
        assert m["seeds"] == list(SEEDS)
        cells = []
        for key, values in expected.items():
            mean, std = statistics.fmean(values), statistics.stdev(values)
            assert m[key]["values"] == values
            assert m[key]["mean"] == pytest.approx(mean, abs=1e-12)
            assert m[key]["std"] == pytest.approx(std, abs=1e-12)
            cells.append(f"{mean:.3f} ± {std:.3f}")
        row = rows[method]
        assert [row["seeds"], row["ACC ↑"], row["BWT ↑"], row["accumulated normalized ↑"]] == [
            ", ".join(map(str, SEEDS)), *cells]
        # The 95% bootstrap interval of each mean is in the table, and holds the mean.
        from blip_rl.metrics import bootstrap_ci

        for key, column in (("acc", "ACC 95% CI"), ("bwt", "BWT 95% CI")):
            _, lo, hi = bootstrap_ci(expected[key])
            assert m[key]["ci95"] == [lo, hi] and lo <= m[key]["mean"] <= hi
            assert row[column] == f"[{lo:.3f}, {hi:.3f}]"


@needs_mpl
def test_table_is_mean_and_std_of_each_results_json(runs, report):
    _check_numbers(report, {m: [runs[m, s] for s in SEEDS] for m in METHODS})


@needs_mpl
def test_curves_come_from_tensorboard_and_end_at_the_results(runs, report):
    summary = report["summary"]
    assert set(summary["curves_from"].values()) == {"tensorboard"}
    for method in METHODS:
        acc = summary["curves"]["accumulated_normalized"][method]
        assert acc["steps"] == [32, 64, 96, 128]
        finals = [accumulated_normalized(_results(runs[method, s])["normalized"][-1]) for s in SEEDS]
        assert acc["mean"][-1] == pytest.approx(statistics.fmean(finals))
        assert acc["min"][-1] == pytest.approx(min(finals)) and acc["max"][-1] == pytest.approx(max(finals))
        boxing = summary["curves"]["per_game"][method]["boxing"]
        assert boxing["steps"] == [96, 128]  # boxing is evaluated from its own training on
        assert all(lo <= mean <= hi for lo, mean, hi in zip(boxing["min"], boxing["mean"], boxing["max"]))


@pytest.fixture(scope="module")
def varied(runs, tmp_path_factory):
    """Copies of the runs without event files and with distinct scores (tiny runs mostly score 0)."""
    root = tmp_path_factory.mktemp("varied")
    out = {}
    for i, ((method, seed), run_dir) in enumerate(sorted(runs.items())):
        d = _copy(run_dir, root / run_dir.name, tb=False)
        r = Results.from_dict(_results(d))
        a, b, c = 0.1 + 0.07 * i, 0.05 + 0.11 * i, 0.9 - 0.13 * i
        for row, raw, normalized in zip(r.rows, [[a * 100], [b * 100, c * 10]], [[a], [b, c]]):
            for score, x, n in zip(row.scores, raw, normalized):
                score.raw, score.normalized = x, n
            for record in r.curve:  # the evaluation records at the row's step say the same
                if record.get("step") == row.step:
                    record["raw"], record["normalized"] = list(raw), list(normalized)
        r.save(d)
        out[method, seed] = d
    return out


@needs_mpl
def test_cli_on_runs_without_event_files(varied, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="blip-rl")
    rep.register(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "report"
    args = parser.parse_args(["report", *(str(varied[k]) for k in sorted(varied, reverse=True)), "--out", str(out)])
    assert args.func(args, []) == 0
    printed = capsys.readouterr().out
    table = (out / "table.md").read_text()
    assert table in printed and "bits_blip.png" in printed and "bits_ft.png" not in printed
    result = {"table": table, "summary": json.loads((out / "summary.json").read_text())}
    _check_numbers(result, {m: [varied[m, s] for s in SEEDS] for m in METHODS})
    # Curves from results.json alone (its evaluation records), ending at the final accumulated reward.
    summary = result["summary"]
    assert set(summary["curves_from"].values()) == {"results.json"}
    blip = summary["curves"]["accumulated_normalized"]["blip"]
    assert blip["steps"] == [c["step"] for c in _results(varied["blip", SEEDS[0]])["curve"]]  # every evaluation
    assert len(blip["steps"]) > 2 and blip["steps"][-1] == 128
    finals = [sum(v for v in _results(varied["blip", s])["normalized"][-1]) for s in SEEDS]
    assert blip["mean"][-1] == pytest.approx(statistics.fmean(finals))
    assert not math.isclose(finals[0], finals[1])


# -- errors -----------------------------------------------------------------------------------------
def test_not_a_run_dir(runs, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        rep.make_report([tmp_path / "nope"], tmp_path / "out")
    with pytest.raises(ValueError, match="not a blip-rl run dir"):
        rep.make_report([tmp_path], tmp_path / "out")
    # the parent of run dirs: the message says to give the run dirs themselves
    with pytest.raises(ValueError, match=r"holds run dirs .*blip-s1"):
        rep.make_report([runs["blip", 1].parent], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unfinished_runs_name_the_resume_command(runs, tmp_path):
    started = _copy(runs["blip", 1], tmp_path / "started")
    (started / "results.json").unlink()
    with pytest.raises(ValueError, match=r"unfinished .*no results\.json") as err:
        rep.make_report([started], tmp_path / "out")
    assert f"blip-rl train --resume {started}" in str(err.value)

    halfway = _copy(runs["blip", 1], tmp_path / "halfway")
    r = Results.from_dict(_results(halfway))
    del r.rows[1:]
    r.save(halfway)
    with pytest.raises(ValueError, match=r"unfinished run \(1 of 2 games learned\)") as err:
        rep.make_report([runs["ft", 1], halfway], tmp_path / "out")
    assert f"blip-rl train --resume {halfway}" in str(err.value)


def test_runs_of_different_game_lists(runs, tmp_path):
    other = _copy(runs["ft", 2], tmp_path / "other")
    cfg = (other / "config.yaml").read_text()
    (other / "config.yaml").write_text(cfg.replace("- kungfu\n- boxing\n", "- boxing\n- kungfu\n", 1))
    r = Results.from_dict(_results(other))
    r.tasks = ["boxing", "kungfu"]
    r.save(other)
    with pytest.raises(ValueError, match="different game sequences.*one report per sequence"):
        rep.make_report([runs["blip", 1], other], tmp_path / "out")


def test_same_method_and_seed_twice(runs, tmp_path):
    twin = _copy(runs["blip", 1], tmp_path / "twin")
    with pytest.raises(ValueError, match=r"both blip with seed 1; give each \(method, options, seed\) once"):
        rep.make_report([runs["blip", 1], twin], tmp_path / "out")


def test_never_writes_into_a_non_empty_out_dir(runs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "table.md").write_text("mine")
    with pytest.raises(ValueError, match="pick a new --out"):
        rep.make_report([runs["blip", 1]], out)
    assert [p.name for p in out.iterdir()] == ["table.md"] and (out / "table.md").read_text() == "mine"
    with pytest.raises(ValueError, match="at least one run dir"):
        rep.make_report([], tmp_path / "empty")


def test_missing_matplotlib_says_what_to_install(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'blip-rl\[report\]'") as err:
        rep.make_report([runs["blip", 1]], tmp_path / "out")
    assert isinstance(err.value, ValueError)  # the CLI prints it as a one-line error
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Each game of the sequence learned alone from scratch (seed 1), as forward-transfer references."""
    root = tmp_path_factory.mktemp("refs")
    games = TINY[TINY.index("--games") + 1].split(",")
    args = [a for i, a in enumerate(TINY) if a != "--games" and (i == 0 or TINY[i - 1] != "--games")]
    dirs = [root / g for g in games]
    procs = [subprocess.Popen([sys.executable, "-m", "blip_rl.cli", "train", *args, "--games", g, "--method", "ft",
                               "--run-dir", str(d)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for g, d in zip(games, dirs)]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
    return dirs


@needs_mpl
def test_forward_transfer_against_reference_runs_and_drift_columns(runs, references, tmp_path):
    from blip_rl.metrics import forward_transfer, task_auc

    report = rep.make_report(list(runs.values()), tmp_path / "rep", references)
    summary = report["summary"]
    ref_auc = {d.name: task_auc(_results(d)["curve"], 0, start=0, end=_results(d)["steps"][0]) for d in references}
    assert summary["reference_auc"] == pytest.approx(ref_auc)
    for (method, seed), run_dir in runs.items():
        curve, steps = _results(run_dir)["curve"], _results(run_dir)["steps"]
        assert [p["task"] for p in curve] == [0, 0, 1, 1]  # an evaluation every 32 steps, 64 per game
        assert [p["step"] for p in curve] == [32, 64, 96, 128]  # at the same offsets in each game
        bounds = [(0, steps[0]), (steps[0], steps[1])]
        ft = [forward_transfer(task_auc(curve, j, start=a, end=b), ref_auc[g])
              for j, (g, (a, b)) in enumerate(zip(("kungfu", "boxing"), bounds))]
        m = summary["methods"][method]
        i = list(SEEDS).index(seed)
        for g, v in zip(("kungfu", "boxing"), ft):
            assert m["forward_transfer_per_task"][g]["values"][i] == (pytest.approx(v) if v is not None else None)
        drift = _results(run_dir)["drift"]
        assert drift[0][0] == 0.0 and drift[1][1] == 0.0  # right after learning a game it has not drifted
        assert m["policy_drift"]["values"][i] == pytest.approx(drift[1][0])
    assert "forward transfer" in report["table"] and "policy drift" in report["table"]
    assert " & FT " in (tmp_path / "rep" / "table.tex").read_text()


def test_report_refuses_references_of_other_games(runs, tmp_path, capsys):
    from blip_rl.cli import main

    other = tmp_path / "other"
    code = main(["train", *[a if a != "kungfu,boxing" else "pong" for a in TINY], "--run-dir", str(other)])
    assert code == 0
    capsys.readouterr()
    assert main(["report", *map(str, runs.values()), "--out", str(tmp_path / "rep"), "--reference", str(other)]) == 2
    err = capsys.readouterr().err
    assert "none of the --reference runs learned a game of this sequence" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "rep").exists()


def test_report_refuses_references_trained_otherwise(runs, references, tmp_path):
    import yaml

    other = _copy(references[0], tmp_path / "ref-other", tb=False)
    config = yaml.safe_load((other / "config.yaml").read_text())
    config["eval"]["every"] = 16
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(rep.UserError, match="eval.every: 16 vs 32"):
        rep.make_report(list(runs.values()), tmp_path / "rep", [other])
    assert not (tmp_path / "rep").exists()


@needs_mpl
def test_the_table_says_how_each_method_trained_and_warns_when_runs_differ(runs, report, tmp_path):
    import yaml

    assert "Trained with (device, precision, torch threads): blip cpu fp32, 1 thread; ft cpu fp32, 1 thread." \
        in report["table"]
    assert "warnings" not in report["summary"]
    assert report["summary"]["methods"]["blip"]["trained_with"] == ["cpu fp32, 1 thread"]
    other = _copy(runs[("ft", 2)], tmp_path / "ft-s2-bf16")
    config = yaml.safe_load((other / "config.yaml").read_text())
    config["runtime"]["precision"] = "bf16"
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    mixed = rep.make_report([runs[("blip", 1)], runs[("ft", 1)], other], tmp_path / "mixed")
    [warning] = mixed["summary"]["warnings"]
    assert "trained differently" in warning and "cpu bf16, 1 thread: ft seed 2" in warning
    assert "**Warning:** the runs compared trained differently" in mixed["table"]
    assert mixed["summary"]["methods"]["ft"]["trained_with"] == ["cpu bf16, 1 thread", "cpu fp32, 1 thread"]


def test_a_run_resumed_another_way_says_so(runs, tmp_path):
    """`train --resume` with other threads or precision adds `runtime_resumed:` to config.yaml;
    the report then names both ways and counts the run as trained differently."""
    import dataclasses

    import yaml

    from blip_rl.api import record_resumed_runtime as _record_resumed_runtime
    from blip_rl.system import resolve_runtime

    run = _copy(runs[("ft", 1)], tmp_path / "ft-s1")
    same = dataclasses.replace(resolve_runtime(device="cpu", precision="fp32", threads=1))
    _record_resumed_runtime(run, same, 32)  # the way it started: nothing added
    assert "runtime_resumed" not in yaml.safe_load((run / "config.yaml").read_text())
    _record_resumed_runtime(run, dataclasses.replace(same, precision="bf16"), 48)
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert [r["at_step"] for r in config["runtime_resumed"]] == [48]
    assert rep.trained_with(rep.load_run(run)) == "cpu fp32, 1 thread then cpu bf16, 1 thread"
    from blip_rl.config import load_config

    assert load_config(run / "config.yaml").precision == "fp32"  # information only, never read back as config


@needs_mpl
def test_a_metric_is_one_entry_and_plasticity_has_its_table(runs, tmp_path, monkeypatch):
    metric = rep.Metric("first_raw", "first game raw", lambda r: r.results.raw[-1][0], digits=1, ci=True, latex=True)
    monkeypatch.setattr(rep, "METRICS", [*rep.METRICS, metric])
    out = rep.make_report(list(runs.values()), tmp_path / "rep")
    for method in METHODS:
        values = [_results(runs[method, s])["raw"][-1][0] for s in SEEDS]
        assert out["summary"]["methods"][method]["first_raw"]["values"] == values
        assert _table_rows(out["table"])[method]["first game raw ↑"] == rep.format_stat(
            out["summary"]["methods"][method]["first_raw"], 1)
    assert "first game raw" in (tmp_path / "rep" / "table.tex").read_text()
    assert "## Plasticity" in out["table"] and "| dormant units ↓ |" in out["table"]
    blip = out["summary"]["methods"]["blip"]
    assert 0 <= blip["dormant"]["mean"] <= 1 and blip["capacity_free"]["mean"] < 1  # blip froze bits
    assert out["summary"]["methods"]["ft"]["capacity_free"]["mean"] == 1.0  # ft freezes none
    assert len(blip["learning_speed_per_task"]) == 2


def test_runs_of_one_method_with_different_options_are_rows_of_their_own(runs, tmp_path):
    """BLIP with the paper's consolidation and with the authors' overwrite, same seed: two rows,
    each named by the option that differs (a variant kept as an option is compared as a method)."""
    import yaml

    variant = _copy(runs["blip", 1], tmp_path / "blip-overwrite-s1")
    config = yaml.safe_load((variant / "config.yaml").read_text())
    config.setdefault("methods", {}).setdefault("blip", {})["consolidation"] = "overwrite"
    (variant / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    groups = rep._group([rep.load_run(p) for p in (runs["blip", 1], variant, runs["ft", 1])])
    assert list(groups) == ["blip (consolidation=keep)", "blip (consolidation=overwrite)", "ft"]
    assert rep._file_name("blip (consolidation=keep)") == "blip_consolidation_keep"
    summary = rep._summary(groups)["methods"]  # each row names its method and options, for a reader to pick
    assert summary["blip (consolidation=overwrite)"]["method"] == "blip"
    assert summary["blip (consolidation=overwrite)"]["options"]["consolidation"] == "overwrite"
    assert summary["ft"]["method"] == "ft" and summary["ft"]["options"] == {}


def test_every_row_of_a_study_gets_its_own_colour():
    """A study's thirteen rows (every built-in method, BLIP twice) on one figure: no colour shared,
    and a method keeps its own colour where it is one row, or the first of its rows."""
    from blip_rl.core import METHODS

    rows = ["blip (consolidation=keep)", "blip (consolidation=overwrite)",
            *[m for m in METHODS if m != "blip"]]
    colors = rep._colors(rows)
    assert len(set(colors.values())) == len(rows)
    assert colors["blip (consolidation=keep)"] == rep._COLORS["blip"] and colors["ewc"] == rep._COLORS["ewc"]


def test_runs_without_their_game_checkpoints_still_report_and_say_the_heatmaps_are_left_out(runs, tmp_path):
    """Run files copied without checkpoints/ (a study's committed results) give the same tables;
    the bit heatmaps, which need the checkpoints, are left out with a warning."""
    import shutil

    pytest.importorskip("matplotlib")
    bare = _copy(runs["blip", 1], tmp_path / "blip-s1")
    shutil.rmtree(bare / "checkpoints")
    full = rep.make_report([runs["blip", 1]], tmp_path / "full")
    out = rep.make_report([bare], tmp_path / "bare")
    assert not (tmp_path / "bare" / "bits_blip.png").exists() and (tmp_path / "full" / "bits_blip.png").is_file()
    assert any("no bit heatmaps of blip" in w for w in out["summary"]["warnings"])
    assert out["summary"]["methods"]["blip"]["acc"] == full["summary"]["methods"]["blip"]["acc"]


def test_curves_from_results_json_alone_are_the_event_files_curves(runs, tmp_path):
    """Without tb/ (a study's committed run files) the curves come from results.json's records
    of every evaluation: the same points as the event files, not one point per game."""
    pytest.importorskip("matplotlib")
    bare = _copy(runs["blip", 1], tmp_path / "blip-s1", tb=False)
    full = rep.make_report([runs["blip", 1]], tmp_path / "full")["summary"]
    again = rep.make_report([bare], tmp_path / "bare")["summary"]
    assert again["curves_from"] != full["curves_from"]
    for kind in ("accumulated_normalized", "per_game"):
        assert json.dumps(again["curves"][kind], sort_keys=True) == json.dumps(full["curves"][kind], sort_keys=True)
