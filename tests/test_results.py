"""Results as records: one :class:`Row` of :class:`TaskScore` per task learned, a format version,
and an upgrade reader for the format-1 files (parallel matrices) earlier versions wrote."""
import csv
import dataclasses
import io
import json
from pathlib import Path

import pytest

from blip_rl.continual import results as results_module
from blip_rl.continual.results import FORMAT, SCORE_FIELDS, Results, Row, TaskScore
from blip_rl.errors import UserError

#: results.json of a real run written before the records (blip, Kung Fu -> Freeway, seed 7).
FORMAT1 = Path(__file__).parent / "data" / "results_format1.json"


def _three_tasks() -> Results:
    r = Results(tasks=["a", "b", "c"], method="blip")
    r.add_row([1.0], [0.1], 100, episodes=[5], cut=[0], drift=[0.0], changed=[0.0])
    r.add_row([2.0, 3.0], [0.2, None], 200, episodes=[5, 5], cut=[1, 0], drift=[0.01, 0.0], changed=[0.1, 0.0])
    r.add_point(150, 1, [1.5, 2.5], [0.15, None], plasticity={"dormant/fc": 0.25})
    return r


def test_rows_are_the_record_and_the_matrices_are_views_padded_with_none():
    r = _three_tasks()
    assert r.rows[1] == Row(after=1, step=200, scores=[TaskScore(2.0, 0.2, 5, 1, 0.01, 0.1),
                                                       TaskScore(3.0, None, 5, 0, 0.0, 0.0)])
    assert r.raw == [[1.0, None, None], [2.0, 3.0, None]]
    assert r.normalized == [[0.1, None, None], [0.2, None, None]]
    assert r.cut == [[0, None, None], [1, 0, None]] and r.steps == [100, 200] and r.tasks_learned == 2
    assert r.changed == r.matrix("greedy_changed") == [[0.0, None, None], [0.1, 0.0, None]]


def test_a_saved_file_is_format_2_and_reads_back_equal(tmp_path):
    r = _three_tasks()
    r.add_time("training", 12.5, 1000)
    r.save(tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["format"] == FORMAT == 2 and saved["rows"][0] == {
        "after": 0, "step": 100, "scores": [{"raw": 1.0, "normalized": 0.1, "episodes": 5, "cut": 0, "drift": 0.0,
                                             "greedy_changed": 0.0}]}
    assert saved["raw"] == r.raw and saved["greedy_changed"] == r.changed  # the views, for jq/pandas readers
    assert Results.load(tmp_path) == r


def test_a_format_1_file_of_a_real_run_upgrades_to_the_same_matrices(tmp_path):
    old = json.loads(FORMAT1.read_text())
    assert "format" not in old and "rows" not in old
    r = Results.load(FORMAT1)
    for name in SCORE_FIELDS:
        assert r.matrix(name) == old[name], name
    assert r.steps == old["steps"] and r.curve == old["curve"] and r.time_s == old["time_s"]
    assert r.acc == pytest.approx(old["acc"]) and r.bwt == pytest.approx(old["bwt"])
    r.save(tmp_path)  # written again it is format 2 and holds the same numbers
    assert Results.load(tmp_path) == r and json.loads((tmp_path / "results.json").read_text())["format"] == 2


def test_the_earliest_format_1_files_without_cut_episodes_or_drift_still_read():
    d = {"method": "ft", "tasks": ["a", "b"], "raw": [[1.0, None], [2.0, 3.0]],
         "normalized": [[None, None], [None, None]], "steps": [10, 20]}
    r = Results.from_dict(d)
    assert r.raw == d["raw"] and r.episodes == [[None, None], [None, None]] and r.drift == r.episodes
    assert r.curve == [] and r.time_s == {}


def test_a_newer_format_or_a_broken_file_is_one_clear_error(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"format": FORMAT + 1, "method": "ft", "tasks": [],
                                                       "rows": []}))
    with pytest.raises(UserError, match="newer than this blip-rl reads.*upgrade blip-rl"):
        Results.load(tmp_path)
    (tmp_path / "results.json").write_text('{"format": 2, "method": "ft"')
    with pytest.raises(UserError, match="unreadable.*changed by hand"):
        Results.load(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        Results.load(tmp_path / "elsewhere")


def test_the_csv_has_one_line_per_task_score_and_a_column_per_field():
    rows = list(csv.DictReader(io.StringIO(_three_tasks().to_csv())))
    assert [(r["after_task"], r["eval_task"]) for r in rows] == [("a", "a"), ("b", "a"), ("b", "b")]
    assert rows[1]["policy_drift"] == "0.01" and rows[2]["normalized"] == "" and rows[1]["cut"] == "1"


def test_a_new_per_task_quantity_is_one_field(monkeypatch):
    """Add a field to TaskScore: it is written in rows, in its matrix view and in the CSV, and read
    back, with nothing else changed."""
    extended = dataclasses.make_dataclass("TaskScore", [("entropy", "float | None", dataclasses.field(default=None))],
                                          bases=(TaskScore,))
    monkeypatch.setattr(results_module, "TaskScore", extended)
    monkeypatch.setattr(results_module, "SCORE_FIELDS", tuple(f.name for f in dataclasses.fields(extended)))
    r = Results(tasks=["a", "b"], method="ft")
    r.rows.append(Row(after=0, step=10, scores=[extended(raw=1.0, entropy=0.7)]))
    d = r.to_dict()
    assert d["rows"][0]["scores"][0]["entropy"] == 0.7 and d["entropy"] == [[0.7, None]]
    assert Results.from_dict(json.loads(json.dumps(d))).matrix("entropy") == [[0.7, None]]
    assert next(csv.DictReader(io.StringIO(r.to_csv())))["entropy"] == "0.7"
