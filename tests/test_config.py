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
        load_config(None, {"max_bits": 25})
    assert load_config(None, {"max_bits": 24}).max_bits == 24


def test_atari6_keeps_the_paper_protocol_and_defaults_keep_short_runs_short():
    paper, default = load_config("atari6"), load_config(None)
    assert paper.eval.max_episode_steps == 27000 and paper.eval.episodes == 10 and paper.ppo.n_steps == 125
    assert default.eval.max_episode_steps == 4500 and default.eval.n_envs == 0


def test_method_options_have_one_spelling_and_the_old_ones_are_read_with_a_note(tmp_path):
    """`methods: {NAME: {...}}` for train as for classify; earlier versions' `blip:`/`ewc:`
    sections, `method_options:` and `blip.max_bits` are read as such, one note line each."""
    cfg = load_config(None, {"method": "ewc", "methods.ewc.ewc_lambda": 7, "methods.blip.consolidation": "overwrite"})
    assert cfg.method_kwargs() == {"ewc_lambda": 7.0, "gamma": 1.0}
    assert cfg.options_of("blip") == {"consolidation": "overwrite"}

    old = tmp_path / "old.yaml"
    old.write_text("method: l2\nmethod_options:\n  strength: 3\nblip:\n  max_bits: 16\n  f_prior: 1.0e-12\n"
                   "ewc:\n  gamma: 0.5\n")
    notes: list[str] = []
    cfg = load_config(old, {"blip.consolidation": "overwrite"}, notes=notes)
    assert cfg.max_bits == 16 and cfg.layer_f_prior == 1e-12 and cfg.method_kwargs()["strength"] == 3.0
    assert cfg.methods == {"l2": {"strength": 3}, "blip": {"f_prior": 1e-12, "consolidation": "overwrite"},
                           "ewc": {"gamma": 0.5}}
    assert notes == ["note: method_options: is an earlier spelling, read as methods.l2.strength",
                     "note: blip: is an earlier spelling, read as max_bits, methods.blip.f_prior",
                     "note: ewc: is an earlier spelling, read as methods.ewc.gamma",
                     "note: blip.consolidation is an earlier spelling, read as methods.blip.consolidation"]
    # --method on the command line: an old file's method_options are that method's
    assert load_config(old, {"method": "mas"}).method_kwargs()["strength"] == 3.0


def test_a_typo_in_another_methods_options_is_found_before_the_run(tmp_path):
    with pytest.raises(ConfigError, match="unknown option.*gama.*method ewc"):
        load_config(None, {"method": "blip", "methods.ewc.gama": 1})
    with pytest.raises(ConfigError, match="methods.blip must be a mapping"):
        load_config(None, {"methods.blip": 3})
    with pytest.raises(ConfigError, match="f_prior must be > 0"):
        load_config(None, {"methods.blip.f_prior": -1})
