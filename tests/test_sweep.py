"""`blip-rl sweep`: 2 methods x 2 seeds of tiny runs on a local Ray started by the test."""
import json

import pytest
import yaml

from tests._cli import TINY, blip_rl

pytest.importorskip("ray", reason="Ray is in the test extra: pip install -e '.[test]'")

SWEEP_TINY = [a for a in TINY if a != "--no-progress"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "s"
    result = blip_rl("sweep", "--methods", "blip,ft", "--seeds", "1,2", "--out", out, "--num-cpus", "2",
                     "--cpus-per-run", "1", "--games", "kungfu,boxing", *SWEEP_TINY, timeout=900)
    return out, result


def test_every_run_finishes_with_its_own_run_dir(sweep):
    out, result = sweep
    summary = json.loads((out / "sweep.json").read_text())
    assert sorted(r["name"] for r in summary["runs"]) == ["blip-s1", "blip-s2", "ft-s1", "ft-s2"]
    for run in summary["runs"]:
        assert run["status"] == "done", run
        res = json.loads((out / run["name"] / "results.json").read_text())
        assert len(res["raw"]) == 2 and res["method"] == run["name"].split("-s")[0]
        assert run["acc"] == res["acc"]
    assert "blip-rl report" in result.stdout


def test_the_same_sweep_again_continues_and_another_is_refused(sweep):
    out, _ = sweep
    again = blip_rl("sweep", "--methods", "blip,ft", "--seeds", "1,2", "--out", out, "--num-cpus", "2",
                    "--cpus-per-run", "1", "--games", "kungfu,boxing", *SWEEP_TINY, timeout=600)
    assert again.stdout.count(": done") == 4  # finished runs are recognised (resume says complete)
    other = blip_rl("sweep", "--methods", "ewc", "--seeds", "1", "--out", out, *SWEEP_TINY, check=False)
    assert other.returncode == 2 and "already holds other work" in other.stderr
    # The same sweep on part of its seeds continues those, and the record keeps every planned run.
    part = blip_rl("sweep", "--methods", "blip,ft", "--seeds", "2", "--out", out, "--num-cpus", "2",
                   "--cpus-per-run", "1", "--games", "kungfu,boxing", *SWEEP_TINY, timeout=600)
    assert part.stdout.count(": done") == 2
    record = yaml.safe_load((out / "sweep.yaml").read_text())
    assert sorted(record["runs"]) == ["blip-s1", "blip-s2", "ft-s1", "ft-s2"] and len(record["commands"]) == 3
    summary = json.loads((out / "sweep.json").read_text())  # every run of the sweep, not only this command's
    assert [r["name"] for r in summary["runs"]] == ["blip-s1", "blip-s2", "ft-s1", "ft-s2"]
    assert summary["this_command"] == ["blip-s2", "ft-s2"] and "2 of 2 runs done" in part.stdout
    # Another setup under the same name is refused even where its run names are new.
    other = blip_rl("sweep", "--methods", "blip,ft", "--seeds", "3", "--out", out, "--games", "kungfu,freeway",
                    *SWEEP_TINY, check=False)
    assert other.returncode == 2 and "already holds other work" in other.stderr


def test_bad_sweep_options_are_clear_errors(tmp_path):
    out = blip_rl("sweep", "--methods", "blip,sgd", "--seeds", "1", "--out", tmp_path / "x", check=False)
    assert out.returncode == 2 and "unknown method" in out.stderr
    out = blip_rl("sweep", "--methods", "blip", "--seeds", "one", "--out", tmp_path / "y", check=False)
    assert out.returncode == 2 and "comma-separated integers" in out.stderr


def test_report_on_the_sweep_outputs(sweep, tmp_path):
    import statistics

    pytest.importorskip("matplotlib")
    from blip_rl.report import make_report

    out, _ = sweep
    runs = {m: [out / f"{m}-s{s}" for s in (1, 2)] for m in ("blip", "ft")}
    report = make_report([d for dirs in runs.values() for d in dirs], tmp_path / "report")
    for name in ("accumulated_normalized.png", "per_game.png", "bits_blip.png", "table.md", "summary.json"):
        assert (tmp_path / "report" / name).is_file(), name
    for method, dirs in runs.items():
        accs = [json.loads((d / "results.json").read_text())["acc"] for d in dirs]
        m = report["summary"]["methods"][method]
        assert m["acc"]["values"] == accs
        assert m["acc"]["mean"] == pytest.approx(statistics.fmean(accs), abs=1e-12)
        assert m["acc"]["std"] == pytest.approx(statistics.stdev(accs), abs=1e-12)


def test_every_run_trains_the_way_the_sweep_decided_and_reproduces(sweep, tmp_path):
    """The driver decides device, precision and threads once (sweep.yaml, sweep.json) and each run
    gets them as flags; a run of the sweep is the same run as `train` with its flags by hand."""
    import yaml

    from tests._cli import assert_same_run

    out, result = sweep
    plan = yaml.safe_load((out / "sweep.yaml").read_text())
    runtime = plan["runtime"]
    assert json.loads((out / "sweep.json").read_text())["runtime"] == runtime
    assert (runtime["device"], runtime["precision"], runtime["torch_threads"]) == ("cpu", "fp32", 1)
    assert "every run: cpu, fp32" in result.stdout
    for name in plan["runs"]:
        command = (out / name / "command.txt").read_text()
        assert "--precision fp32" in command and "--threads 1" in command and "--device cpu" in command
        assert yaml.safe_load((out / name / "config.yaml").read_text())["runtime"]["precision"] == "fp32"
    args = [*plan["args"]["blip-s1"], "--device", "cpu", "--precision", "fp32", "--threads", "1"]
    blip_rl("train", *args, "--run-dir", tmp_path / "by-hand")
    assert_same_run(out / "blip-s1", tmp_path / "by-hand")


def test_a_sweep_mirrored_to_wandb_puts_its_runs_in_one_group(tmp_path):
    import argparse

    from blip_rl import sweep

    parser = argparse.ArgumentParser()
    sweep.register(parser.add_subparsers())
    args = parser.parse_args(["sweep", "--methods", "blip,ft", "--seeds", "1", "--out", str(tmp_path / "paper"),
                              "--wandb", "proj", "--games", "minatar-breakout"])
    runs = sweep.plan_runs(args)
    for run in runs:
        assert "--wandb" in run["args"] and run["args"][run["args"].index("--wandb") + 1] == "proj"
        assert run["args"][run["args"].index("wandb.group=paper") - 1] == "--set"
    args = parser.parse_args(["sweep", "--methods", "blip", "--seeds", "1", "--out", str(tmp_path / "x"),
                              "--wandb", "proj", "--set", "wandb.group=mine"])
    assert "wandb.group=x" not in sweep.plan_runs(args)[0]["args"]


def _plan(tmp_path, *argv):
    import argparse

    from blip_rl import sweep

    parser = argparse.ArgumentParser()
    sweep.register(parser.add_subparsers())
    args = parser.parse_args(["sweep", "--out", str(tmp_path / "grid"), "--games", "minatar-breakout", *argv])
    return sweep.plan_runs(args), args


def test_a_sweep_continues_with_other_seeds_only(tmp_path):
    from blip_rl.sweep import _continues

    def plan(*argv):
        runs, _ = _plan(tmp_path, *argv)
        return {"args": {r["name"]: r["args"] for r in runs}, "requested": {"precision": "fp32"}}

    base = ["--methods", "blip,ewc", "--grid", "methods.ewc.ewc_lambda=1,10"]
    before = plan(*base, "--seeds", "1,2")
    assert _continues(before, plan(*base, "--seeds", "1,2,3,4,5"))  # seeds added
    assert _continues(before, plan(*base, "--seeds", "3"))
    assert not _continues(before, plan(*base, "--seeds", "1,2", "--steps-per-game", "999"))
    assert not _continues(before, plan(*base[:2], "--seeds", "1,2"))  # the grid's points left out
    assert not _continues(before, plan("--methods", "blip", "--seeds", "3"))  # a method fewer
    assert not _continues(before, {**plan(*base, "--seeds", "3"), "requested": {"precision": "bf16"}})


def test_a_grid_runs_each_point_of_its_method_only(tmp_path):
    runs, _ = _plan(tmp_path, "--methods", "ewc,ft,blip", "--seeds", "5,6",
                    "--grid", "methods.ewc.ewc_lambda=500,5e3", "--grid", "methods.ewc.gamma=1,0.9",
                    "--grid", "methods.blip.f_prior=1e-14,1e-16")
    names = [r["name"] for r in runs]
    ewc = [n for n in names if n.startswith("ewc-")]
    assert len(ewc) == 2 * 2 * 2 and "ewc-ewc_lambda=5e3-gamma=0.9-s6" in ewc  # every combination x seeds
    assert [n for n in names if n.startswith("ft")] == ["ft-s5", "ft-s6"]  # no grid: one point
    assert {n for n in names if n.startswith("blip")} == {f"blip-f_prior={v}-s{s}" for v in ("1e-14", "1e-16")
                                                           for s in (5, 6)}
    run = next(r for r in runs if r["name"] == "ewc-ewc_lambda=5e3-gamma=0.9-s6")
    sets = [run["args"][i + 1] for i, a in enumerate(run["args"]) if a == "--set"]
    assert sets == ["methods.ewc.ewc_lambda=5e3", "methods.ewc.gamma=0.9"]
    assert run["options"] == {"ewc_lambda": "5e3", "gamma": "0.9"} and run["run_dir"].endswith(run["name"])


@pytest.mark.parametrize("grid, says", [
    ("ppo.learning_rate=1e-3,1e-4", "give a method option"),
    ("methods.l2.strength=1,2", "not in --methods"),
    ("methods.ewc.ewc_lambda=", "distinct values"),
    ("methods.ewc.ewc_lambda=1,1", "distinct values"),
    ("methods.ewc.ewc_lambda=1/2", "not a plain value"),
])
def test_a_bad_grid_is_one_line_before_any_run(tmp_path, grid, says):
    from blip_rl.errors import UserError

    with pytest.raises(UserError, match=says):
        _plan(tmp_path, "--methods", "ewc,ft", "--seeds", "1", "--grid", grid)


def test_a_grid_value_the_method_refuses_stops_the_sweep_before_it_starts(tmp_path):
    for grid, says in (("methods.ewc.ewc_lambda=1,abc", "ewc_lambda of method ewc must be a number, got 'abc'"),
                       ("methods.ewc.lamda=1", "unknown option(s) lamda for method ewc")):
        out = blip_rl("sweep", "--methods", "ewc", "--seeds", "1", "--out", tmp_path / "g", "--games",
                      "minatar-breakout", "--grid", grid, check=False)
        assert out.returncode == 2 and says in out.stderr and len(out.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "g").exists()


def test_a_study_budget_below_one_rollout_is_refused_before_the_sweep_starts(tmp_path):
    out = blip_rl("sweep", "--config", "configs/minatar3.yaml", "--methods", "ft", "--seeds", "1",
                  "--out", tmp_path / "study", "--steps-per-game", "1000", check=False)
    assert out.returncode == 2 and "below one rollout" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "study").exists()


def test_a_grid_point_written_twice_or_also_set_is_refused(tmp_path):
    out = blip_rl("sweep", "--methods", "ewc", "--seeds", "1", "--out", tmp_path / "g", "--games",
                  "minatar-breakout", "--grid", "methods.ewc.ewc_lambda=1,1.0", check=False)
    assert out.returncode == 2 and "the same options" in out.stderr and not (tmp_path / "g").exists()
    with pytest.raises(Exception, match="in --grid and in --set"):
        _plan(tmp_path, "--methods", "ewc", "--seeds", "1", "--grid", "methods.ewc.ewc_lambda=1,2",
              "--set", "methods.ewc.ewc_lambda=3")


def test_a_grid_reaches_a_plugin_methods_options(tmp_path, monkeypatch):
    from tests.test_plugins import PLUGIN

    (tmp_path / "grid_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    runs, _ = _plan(tmp_path, "--methods", "grid_plugin:L2", "--seeds", "1",
                    "--grid", "methods.grid_plugin:L2.strength=0.5,2")
    assert [r["name"] for r in runs] == ["grid_plugin.L2-strength=0.5-s1", "grid_plugin.L2-strength=2-s1"]
    assert "methods.grid_plugin:L2.strength=2" in runs[1]["args"]


def test_a_sweep_whose_config_file_was_edited_is_not_continued(tmp_path):
    config = tmp_path / "study.yaml"
    config.write_text("games: [minatar-breakout, minatar-freeway]\nmethods:\n  ewc:\n    ewc_lambda: 5000\n")
    argv = ["sweep", "--config", config, "--methods", "ewc", "--seeds", "1", "--out", tmp_path / "s",
            "--num-cpus", "1", *SWEEP_TINY]
    blip_rl(*argv, timeout=600)
    record = yaml.safe_load((tmp_path / "s" / "sweep.yaml").read_text())
    assert record["config"]["methods.ewc.ewc_lambda"] == "5000.0" and "precision" not in record["config"]
    config.write_text(config.read_text().replace("5000", "50000"))  # the file edited, the command the same
    edited = blip_rl(*argv, check=False)
    assert edited.returncode == 2 and "methods.ewc.ewc_lambda: 5000.0 -> 50000.0" in edited.stderr, edited.stderr
    assert len(edited.stderr.strip().splitlines()) == 1
    config.write_text(config.read_text().replace("50000", "5000"))  # restored: the sweep continues
    assert blip_rl(*argv, timeout=600).stdout.count(": done") == 1
    # Continued on a machine where the sweep would decide another precision: refused, not mixed.
    record = yaml.safe_load((tmp_path / "s" / "sweep.yaml").read_text())
    record["runtime"]["cpu"]["model"] = "another CPU"
    record["runtime"]["precision"] = "bf16"
    (tmp_path / "s" / "sweep.yaml").write_text(yaml.safe_dump(record, sort_keys=False))
    other_machine = blip_rl(*argv, check=False, timeout=600)
    assert other_machine.returncode == 2 and "would mix the two" in other_machine.stderr, other_machine.stderr


def test_the_config_record_holds_what_the_runs_read(tmp_path):
    from blip_rl.config import load_config
    from blip_rl.sweep import _config_record

    runs, _ = _plan(tmp_path, "--methods", "ft,blip", "--seeds", "1", "--grid", "methods.blip.f_prior=1e-12,1e-14")
    record = _config_record(load_config("configs/minatar3.yaml"), runs)
    # Another method's strength (an ft reference sweep beside a tuned config) and what each run is
    # given itself (method, seed, the grid's key, the runtime) are not part of it.
    assert not [k for k in record if k.startswith(("methods.ewc", "methods.l2"))]
    assert {"method", "seed", "precision", "threads", "methods.blip.f_prior"}.isdisjoint(record)
    assert record["methods.blip.consolidation"] == "keep" and record["ppo.n_steps"] == "128"
    assert record["games"] == "[minatar-spaceinvaders, minatar-asterix, minatar-seaquest]"
