"""The typed config: fitted values, keys of earlier versions, limits that name the flag."""
import pytest
import yaml

from blip_rl.config import ConfigError, load_config, nearest_divisor, to_dict


@pytest.mark.parametrize("n_envs", range(1, 65))
def test_every_n_envs_from_1_to_64_works_with_the_default_config(n_envs):
    notes = []
    cfg = load_config(None, {"env.n_envs": n_envs}, notes=notes)
    rollout = cfg.ppo.n_steps * n_envs
    assert rollout % cfg.ppo.n_minibatches == 0 and notes == []


@pytest.mark.parametrize("n_envs", range(1, 65))
def test_the_paper_config_fits_its_minibatches_to_any_n_envs_with_a_note(n_envs):
    notes = []
    cfg = load_config("atari6", {"env.n_envs": n_envs}, notes=notes)
    rollout = 125 * n_envs
    assert rollout % cfg.ppo.n_minibatches == 0
    if rollout % 8:
        assert len(notes) == 1 and f"using {cfg.ppo.n_minibatches} minibatches" in notes[0] and "--n-envs" in notes[0]
    else:
        assert cfg.ppo.n_minibatches == 8 and notes == []


def test_the_issue_example_gets_the_nearest_split():
    notes = []
    cfg = load_config("atari6", {"env.n_envs": 2}, notes=notes)  # 250 steps: 10 minibatches of 25
    assert cfg.ppo.n_minibatches == 10 and "of 25" in notes[0]
    assert nearest_divisor(250, 8) == 10 and nearest_divisor(125, 8) == 5 and nearest_divisor(12, 3) == 3


def test_keys_of_earlier_versions_are_read(tmp_path):
    old = to_dict(load_config(None))
    del old["precision"], old["threads"]
    old.update(fast=True, torch_threads=1, runtime={"precision": "bf16", "note": "information only"})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(old))
    cfg = load_config(path)
    assert cfg.precision == "bf16" and cfg.threads == 1


def test_bit_width_beyond_float32_is_refused_naming_the_limit():
    with pytest.raises(ConfigError, match=r"max_bits must be in 1\.\.24 \(float32"):
        load_config(None, {"blip.max_bits": 25})
    assert load_config(None, {"blip.max_bits": 24}).blip.max_bits == 24


def test_atari6_keeps_the_paper_protocol_and_defaults_keep_short_runs_short():
    paper, default = load_config("atari6"), load_config(None)
    assert paper.eval.max_episode_steps == 27000 and paper.eval.episodes == 10 and paper.ppo.n_steps == 125
    assert default.eval.max_episode_steps == 4500 and default.eval.n_envs == 0
