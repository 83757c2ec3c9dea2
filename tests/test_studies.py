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
    assert "| ewc | ewc_lambda=5000.0 | 0.500 | [0.400, 0.600] | yes |" in table


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
