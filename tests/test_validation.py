"""Bad input is caught before anything runs: every config key out of its declared range gives
exit 2, one line on stderr, and nothing on disk; for train, classify, sweep and --resume."""
import dataclasses

import pytest

from blip_rl import cli
from blip_rl.classification.cli import ClassifyConfig
from blip_rl.config import TrainConfig


def _bad_values(cfg, prefix=""):
    """(dotted key, an out-of-range value) for every key with a declared range."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            yield from _bad_values(value, f"{prefix}{f.name}.")
            continue
        meta = f.metadata
        if "choices" in meta:
            yield f"{prefix}{f.name}", "nope"
        elif "ge" in meta:
            yield f"{prefix}{f.name}", meta["ge"] - 1
        elif "gt" in meta:
            yield f"{prefix}{f.name}", meta["gt"] if isinstance(meta["gt"], int) else -1.0
        if "le" in meta:
            yield f"{prefix}{f.name}", meta["le"] + 1


TRAIN_KEYS = list(_bad_values(TrainConfig()))
CLASSIFY_KEYS = [kv for kv in _bad_values(ClassifyConfig()) if kv[0] != "train"]


def test_every_train_key_has_a_range_or_is_checked_elsewhere():
    ranged = {k for k, _ in TRAIN_KEYS}
    free = set()
    for section in ("", "env.", "ppo.", "eval."):
        obj = TrainConfig() if not section else getattr(TrainConfig(), section[:-1])
        for f in dataclasses.fields(obj):
            if not dataclasses.is_dataclass(getattr(obj, f.name)) and f"{section}{f.name}" not in ranged:
                free.add(f"{section}{f.name}")
    # bools need no range; the rest are checked by their own code (games, methods, device, bits).
    bools = {k for k in free if isinstance(eval_key(k), bool)}
    assert free - bools == {"games", "method", "methods", "device", "max_bits"}


def eval_key(key):
    obj = TrainConfig()
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def _one_line_exit_2(capsys, argv):
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("key, value", TRAIN_KEYS, ids=[f"{k}={v}" for k, v in TRAIN_KEYS])
def test_train_refuses_every_key_out_of_range_before_writing(tmp_path, capsys, key, value):
    run_dir = tmp_path / "run"
    err = _one_line_exit_2(capsys, ["train", "--games", "kungfu", "--precision", "fp32", "--device", "cpu",
                                    "--set", f"{key}={value}", "--run-dir", str(run_dir), "--no-progress"]
                           if key not in ("precision", "device") else
                           ["train", "--games", "kungfu", "--set", f"{key}={value}", "--run-dir", str(run_dir)])
    assert key in err
    assert not run_dir.exists()


@pytest.mark.parametrize("key, value", CLASSIFY_KEYS, ids=[f"{k}={v}" for k, v in CLASSIFY_KEYS])
def test_classify_refuses_every_key_out_of_range_before_writing(tmp_path, capsys, key, value):
    run_dir = tmp_path / "run"
    err = _one_line_exit_2(capsys, ["classify", "--benchmark", "digits5", "--method", "ft", "--set",
                                    f"{key}={value}", "--run-dir", str(run_dir)])
    assert key in err and not run_dir.exists()


def test_the_late_failures_once_seen_now_fail_first(tmp_path, capsys):
    """eval.max_episode_steps=-5 once trained a whole game first; --seed -1 wrote config.yaml."""
    for extra in (["--set", "eval.max_episode_steps=-5"], ["--seed", "-1"], ["--set", f"seed={2**31}"]):
        run_dir = tmp_path / "X"
        _one_line_exit_2(capsys, ["train", "--games", "kungfu,boxing", "--steps-per-game", "2048", "--n-envs", "2",
                                  "--threads", "1", "--precision", "fp32", *extra, "--run-dir", str(run_dir)])
        assert not run_dir.exists()


def test_a_resume_of_a_run_whose_config_was_broken_by_hand_touches_nothing(tmp_path, capsys):
    import yaml

    from blip_rl.config import to_dict

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = to_dict(TrainConfig())
    config["eval"]["max_episode_steps"] = -5
    text = yaml.safe_dump(config)
    (run_dir / "config.yaml").write_text(text)
    (run_dir / ".results.json.abc.tmp").write_text("a temp file of a killed write")
    err = _one_line_exit_2(capsys, ["train", "--resume", str(run_dir)])
    assert "eval.max_episode_steps" in err
    assert (run_dir / "config.yaml").read_text() == text and (run_dir / ".results.json.abc.tmp").exists()


def test_a_sweep_with_a_key_out_of_range_starts_nothing(tmp_path, capsys):
    pytest.importorskip("ray")
    out = tmp_path / "sweep"
    _one_line_exit_2(capsys, ["sweep", "--methods", "blip,ft", "--seeds", "1,2", "--out", str(out), "--games",
                              "kungfu", "--set", "ppo.gae_lambda=2"])
    assert not out.exists()


METHOD_OPTIONS = [("blip", "consolidation", "sync"), ("blip", "ig_rule", "nope"), ("ewc", "gamma", 2),
                  ("ewc", "ewc_lambda", -1), ("mas", "samples", 0), ("si", "damping", 0), ("l2", "strength", -1),
                  ("packnet", "retrain", 2), ("shrink-perturb", "shrink", 2), ("bc-replay", "batch", 0)]


@pytest.mark.parametrize("method, option, value", METHOD_OPTIONS)
def test_a_method_option_out_of_range_is_refused_before_writing(tmp_path, capsys, method, option, value):
    for argv in (["train", "--games", "kungfu", "--method", method, "--precision", "fp32", "--set",
                  f"methods.{method}.{option}={value}", "--run-dir", str(tmp_path / "run")],
                 ["classify", "--benchmark", "digits5", "--method", method, "--set",
                  f"methods.{method}.{option}={value}", "--run-dir", str(tmp_path / "run")]):
        err = _one_line_exit_2(capsys, argv)
        assert option in err and f"method {method}" in err
        assert not (tmp_path / "run").exists()
