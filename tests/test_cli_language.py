"""Every command speaks the same language: shared flags, help with defaults, errors that name
the fix and the subcommand's own usage."""
import argparse

import pytest

from blip_rl import cli
from blip_rl.classification.cli import ClassifyConfig
from blip_rl.config import TrainConfig
from blip_rl.flags import DEFAULT_SEED
from tests._cli import blip_rl


def _subcommands():
    return cli.build_parser().subcommands


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_option_of_every_command_has_help_and_shows_its_default(name, capsys):
    parser = _subcommands()[name]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"blip-rl {name} {action.option_strings or action.dest}: no help text"
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--help"])
    assert exit_info.value.code == 0
    text = "".join(capsys.readouterr().out.split())  # wrapped lines may split a default: compare without spaces
    for action in parser._actions:
        if action.option_strings and action.default is not None and action.default is not False \
                and action.default != argparse.SUPPRESS:
            assert "".join(f"(default: {action.default})".split()) in text or "default" in action.help, \
                (name, action.option_strings)


def test_one_default_seed_everywhere():
    toy = _subcommands()["toy"].parse_args([])
    assert TrainConfig().seed == ClassifyConfig().seed == toy.seed == DEFAULT_SEED


@pytest.mark.parametrize("command", ["train", "eval", "info", "toy", "classify", "record"])
def test_threads_means_the_same_everywhere(command):
    parser = _subcommands()[command]
    threads = next(a for a in parser._actions if "--threads" in a.option_strings)
    assert threads.type is int and threads.help.startswith("torch (and env) threads")


def test_an_unknown_flag_prints_the_subcommands_usage_and_a_split_list_gets_a_hint(tmp_path):
    out = blip_rl("train", "--games", "kungfu,", "boxing", "--run-dir", tmp_path / "r", check=False)
    assert out.returncode == 2 and "usage: blip-rl train" in out.stderr
    assert "'kungfu,' ends with a comma" in out.stderr and "kungfu,boxing" in out.stderr
    assert not (tmp_path / "r").exists()
    out = blip_rl("classify", "--benchmark", "digits5", "--bogus", check=False)
    assert out.returncode == 2 and "usage: blip-rl classify" in out.stderr and "--bogus" in out.stderr


def test_a_game_typo_gets_the_nearest_names(tmp_path):
    out = blip_rl("train", "--games", "kungfu,boxnig", "--run-dir", tmp_path / "r", check=False)
    assert out.returncode == 2 and "did you mean boxing?" in out.stderr and not (tmp_path / "r").exists()


def test_classify_takes_threads_and_prints_the_same_first_line_as_train(tmp_path):
    out = blip_rl("classify", "--benchmark", "digits5", "--method", "ft", "--epochs", "1", "--threads", "1",
                  "--precision", "fp32", "--set", "model.hidden=16", "--run-dir", tmp_path / "c")
    first = out.stdout.splitlines()[0]
    assert first.startswith("blip-rl: cpu, fp32 (classification trains in fp32), 1 torch") and "--threads 1" in first
    bf16 = blip_rl("classify", "--benchmark", "digits5", "--precision", "bf16", "--run-dir", tmp_path / "d",
                   check=False)
    assert bf16.returncode == 2 and "invalid choice: 'bf16'" in bf16.stderr
