"""ContinualPPO against stock SB3 PPO, and what BLIP keeps of the first game."""
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from blip_rl.agents.checkpoint import load_checkpoint
from blip_rl.agents.learner import AtariLearner
from blip_rl.continual.checkpoint import write_checkpoint
from blip_rl.agents.policies import MultiHeadPolicy
from blip_rl.agents.ppo import ContinualPPO
from blip_rl.config import load_config
from blip_rl.core import FineTune, blip_layers, make_method
from blip_rl.envs import make_vec_env

PPO_KW = dict(n_steps=32, batch_size=32, n_epochs=2, learning_rate=lambda p: 1e-3 * p, seed=3, device="cpu",
              policy_kwargs={"extractor_kwargs": {"features_dim": 64}, "optimizer_kwargs": {"eps": 1e-5}})


def test_noop_method_matches_stock_sb3_ppo_step_for_step():
    stock = PPO(MultiHeadPolicy, make_vec_env("boxing", n_envs=2, seed=0), **PPO_KW)
    stock.learn(128)
    ours = ContinualPPO(MultiHeadPolicy, make_vec_env("boxing", n_envs=2, seed=0), **PPO_KW)
    ours.policy.transposed_inference = False  # stock SB3's arithmetic in rollouts, bit for bit
    ours.method = FineTune(ours.policy.trunk)
    ours.start_game(ours.env, 0, budget=128)  # the env SB3 seeded in the constructor, as for stock
    ours.learn(128, reset_num_timesteps=False)
    for (name, a), (_, b) in zip(stock.policy.state_dict().items(), ours.policy.state_dict().items()):
        assert torch.equal(a, b), name


def test_policy_forward_and_evaluate_actions_equal_sb3_distribution_path():
    from stable_baselines3.common.policies import ActorCriticPolicy

    model = ContinualPPO(MultiHeadPolicy, make_vec_env("boxing", n_envs=2, seed=0), **PPO_KW)
    policy = model.policy
    obs = torch.randint(0, 256, (8, 4, 84, 84), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    for deterministic in (False, True):
        torch.manual_seed(5)
        ours = policy(obs, deterministic=deterministic)
        torch.manual_seed(5)
        sb3 = ActorCriticPolicy.forward(policy, obs, deterministic=deterministic)
        for a, b in zip(ours, sb3):
            assert a.shape == b.shape and torch.equal(a, b)
    actions = torch.arange(8) % policy.action_space.n
    for a, b in zip(policy.evaluate_actions(obs, actions.float()),
                    ActorCriticPolicy.evaluate_actions(policy, obs, actions.float())):
        assert torch.equal(a, b)


def test_transposed_inference_weights_match_and_go_back_after_the_block():
    model = ContinualPPO(MultiHeadPolicy, make_vec_env("boxing", n_envs=2, seed=0), **PPO_KW)
    policy = model.policy
    obs = torch.randint(0, 256, (16, 4, 84, 84), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        plain = policy.head_logits(obs, 0)
        with policy.weight_cast_cache():
            cached = policy.head_logits(obs, 0)
            with torch.enable_grad():  # gradients inside the block still reach the parameters
                policy.head_logits(obs, 0).sum().backward()
    assert torch.allclose(cached, plain, rtol=1e-5, atol=1e-6)
    assert policy.trunk.linear[0].weight.grad is not None
    assert all("forward" not in m.__dict__ for m in policy.modules())  # patched forwards removed
    with pytest.raises(RuntimeError, match="stale"), torch.no_grad(), policy.weight_cast_cache():
        policy.trunk.linear[0].weight.mul_(1.0)


def _learn_two_games(method, tmp_path):
    cfg = load_config(None, {
        "games": "kungfu,boxing", "method": method, "steps_per_game": 256, "env.n_envs": 2,
        "ppo.n_steps": 64, "ppo.n_minibatches": 2, "ppo.learning_rate": 3e-3, "ppo.lr_decay": False,
        "features_dim": 64, "fisher_samples": 128, "device": "cpu", "seed": 0})
    learner = AtariLearner(cfg)
    m = make_method(method, learner.trunk, **({"f_prior": 1e-14} if method == "blip" else {}))
    states = None
    learner.begin_task(0, m)
    learner.learn(0, cfg.steps_per_game, lambda s: None)
    m.end_task(1, learner.fisher_data(0) if m.needs_fisher else None)
    states = torch.as_tensor(make_vec_env("kungfu", n_envs=16, seed=7).reset())
    with torch.no_grad():
        p1 = torch.softmax(learner.policy.head_logits(states, 0), -1)
    frozen = {n: (l.weight_anchor.clone(), l.weight_bits.clone(), l.bound("weight")) for n, l in blip_layers(learner.trunk)}
    learner.begin_task(1, m)
    learner.learn(1, cfg.steps_per_game, lambda s: None)
    with torch.no_grad():
        p2 = torch.softmax(learner.policy.head_logits(states, 0), -1)
    write_checkpoint(tmp_path / f"{method}.pt", learner, m, tasks_done=2)
    learner.close()
    return learner, frozen, (p2 - p1).abs().max().item()


def test_blip_keeps_first_game_policy_within_frozen_intervals_while_ft_moves(tmp_path):
    learner, frozen, blip_shift = _learn_two_games("blip", tmp_path)
    for name, layer in blip_layers(learner.trunk):
        anchor, bits, bound = frozen[name]
        radius = bound * torch.exp2(-bits.float())
        assert torch.all((layer.weight.detach() - anchor).abs() <= radius + 4e-7 * bound), name
    _, _, ft_shift = _learn_two_games("ft", tmp_path)
    assert ft_shift > 0.01
    assert blip_shift < 0.2 * ft_shift, (blip_shift, ft_shift)
    # The checkpoint alone rebuilds both heads and the BLIP state.
    policy, meta = load_checkpoint(tmp_path / "blip.pt")
    assert meta["tasks"] == ["kungfu", "boxing"] and policy.n_heads == 2
    for (name, a), (_, b) in zip(blip_layers(learner.trunk), blip_layers(policy.trunk)):
        assert torch.equal(a.weight_bits, b.weight_bits)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    from blip_rl.agents.checkpoint import CheckpointError

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_non_finite_loss_stops_training_with_a_clear_error():
    from blip_rl.agents.ppo import NonFiniteLossError
    from blip_rl.core import ContinualMethod

    class Broken(ContinualMethod):
        name = "broken"

        def penalty(self):
            return torch.tensor(float("nan"))

    model = ContinualPPO(MultiHeadPolicy, make_vec_env("boxing", n_envs=2, seed=0), **PPO_KW)
    model.method = Broken(model.policy.trunk)
    with pytest.raises(NonFiniteLossError, match="NaN/inf"):
        model.learn(64)


def test_fast_mode_keeps_the_frozen_interval_invariant():
    from blip_rl.core import Blip

    model = ContinualPPO(MultiHeadPolicy, make_vec_env("boxing", n_envs=2, seed=0), fast=True, **PPO_KW)
    method = Blip(model.policy.trunk)
    g = torch.Generator().manual_seed(0)
    for _, layer in blip_layers(model.policy.trunk):  # some bits frozen, as after a first game
        layer.consolidate_({p: torch.rand(getattr(layer, p).shape, generator=g) * 1e-9
                            for p in layer.blip_param_names()})
    frozen = {n: (l.weight_anchor.clone(), l.weight_bits.clone(), l.bound("weight"))
              for n, l in blip_layers(model.policy.trunk)}
    model.method = method
    model.start_game(model.env, 0, budget=128)
    model.learn(128, reset_num_timesteps=False)
    assert model.policy.autocast_dtype == torch.bfloat16
    for name, layer in blip_layers(model.policy.trunk):
        anchor, bits, bound = frozen[name]
        assert layer.weight.dtype == torch.float32
        assert torch.all((layer.weight.detach() - anchor).abs() <= bound * torch.exp2(-bits.float()) + 4e-7 * bound)
        assert bits.float().mean() > 1  # the test froze something


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_frames_are_scaled_as_sb3_does_with_one_conversion(channels_last, dtype):
    from stable_baselines3.common.preprocessing import preprocess_obs

    kw = {**PPO_KW["policy_kwargs"], "extractor_kwargs": {"features_dim": 64, "channels_last": channels_last}}
    model = ContinualPPO(MultiHeadPolicy, make_vec_env("boxing", n_envs=2, seed=0), **{**PPO_KW, "policy_kwargs": kw})
    policy = model.policy
    policy.autocast_dtype = dtype
    obs = torch.arange(256, dtype=torch.uint8).repeat(2 * 4 * 84 * 84 // 256 + 1)[: 2 * 4 * 84 * 84].view(2, 4, 84, 84)
    x = policy.images(obs)
    expected = preprocess_obs(obs, policy.observation_space)  # SB3: obs.float() / 255
    assert x.dtype == (dtype or torch.float32)
    assert x.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert torch.equal(x, expected.to(x.dtype))  # the same rounding as autocast's cast of SB3's floats


def test_weight_cast_cache_casts_trunk_weights_once_per_block_and_changes_no_output():
    from contextlib import nullcontext

    from torch.profiler import ProfilerActivity, profile

    model = ContinualPPO(MultiHeadPolicy, make_vec_env("boxing", n_envs=2, seed=0), fast=True, **PPO_KW)
    policy = model.policy
    obs = torch.as_tensor(model.env.reset())
    fc_shape = list(policy.trunk.linear[0].weight.shape)

    def four_forwards(block):
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            with torch.no_grad(), block:
                logits = torch.stack([policy.head_logits(obs, 0) for _ in range(4)])
        casts = [e for e in prof.events() if e.name == "aten::_to_copy" and e.input_shapes[:1] == [fc_shape]]
        return logits, len(casts)

    uncached, n_uncached = four_forwards(nullcontext())
    cached, n_cached = four_forwards(policy.weight_cast_cache())
    assert (n_uncached, n_cached) == (4, 1)  # the 64x3136 weight is cast to bf16 once per block
    assert cached.dtype == torch.float32 and torch.equal(cached, uncached)  # heads still run in float32
    with pytest.raises(RuntimeError, match="stale"), torch.no_grad(), policy.weight_cast_cache():
        policy.trunk.linear[0].weight.mul_(1.0)  # any in-place write inside the block is caught


def _fc_weight_casts(policy, fn) -> int:
    from torch.profiler import ProfilerActivity, profile

    shape = [list(policy.trunk.linear[0].weight.shape)]
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    return sum(e.name == "aten::_to_copy" and e.input_shapes[:1] == shape for e in prof.events())


def test_fast_rollouts_and_evaluations_cast_the_trunk_weights_once():
    from blip_rl.agents.evaluation import evaluate_game
    from blip_rl.envs import get_game

    model = ContinualPPO(MultiHeadPolicy, make_vec_env("boxing", n_envs=2, seed=0), fast=True, **PPO_KW)
    model.start_game(model.env, 0, budget=128)
    model.learn(32, reset_num_timesteps=False)  # sets up the logger, the buffer and the first obs
    callback = model._init_callback(None)
    n = _fc_weight_casts(model.policy, lambda: model.collect_rollouts(model.env, callback, model.rollout_buffer, 16))
    assert n == 1  # 17 forwards (16 steps and the bootstrap value), one cast
    cfg = load_config(None, {"games": "boxing", "fast": True, "features_dim": 64, "eval.episodes": 1,
                             "eval.n_envs": 1, "eval.max_episode_steps": 20, "device": "cpu"})
    n = _fc_weight_casts(model.policy, lambda: evaluate_game(model.policy, 0, get_game("boxing"), cfg, seed=0))
    assert n == 1


def test_fast_mode_bootstrap_values_use_the_fast_trunk():
    model = ContinualPPO(MultiHeadPolicy, make_vec_env("boxing", n_envs=2, seed=0), fast=True, **PPO_KW)
    obs = torch.as_tensor(model.env.reset())
    with torch.no_grad():
        _, values, _ = model.policy(obs)
        assert torch.equal(model.policy.predict_values(obs), values)
        torch.testing.assert_close(model.policy.get_distribution(obs).distribution.logits,  # bf16 vs fp32
                                   torch.log_softmax(model.policy.head_logits(obs, 0), -1), rtol=0, atol=1e-6)


def test_unshared_trunk_is_refused():
    with pytest.raises(ValueError, match="shares one trunk"):
        PPO(MultiHeadPolicy, make_vec_env("boxing", n_envs=2, seed=0),
            **{**PPO_KW, "policy_kwargs": {**PPO_KW["policy_kwargs"], "share_features_extractor": False}})


def test_on_update_sees_the_parameters_after_each_update():
    cfg = load_config(None, {"games": "boxing", "method": "ft", "steps_per_game": 128, "env.n_envs": 2,
                             "ppo.n_steps": 32, "ppo.n_minibatches": 2, "features_dim": 64, "device": "cpu"})
    learner = AtariLearner(cfg)
    learner.begin_task(0, make_method("ft", learner.trunk))
    seen = []
    learner.learn(0, cfg.steps_per_game, lambda step: seen.append(
        (step, learner.model._n_updates, [p.detach().clone() for p in learner.policy.parameters()])))
    learner.close()
    assert [(step, n) for step, n, _ in seen] == [(64, 4), (128, 8)]  # 2 rollouts of 2x32 steps, 4 epochs each
    final = list(learner.policy.parameters())
    assert all(torch.equal(a, b) for a, b in zip(seen[-1][2], final))  # the last call is after the last update


def test_fisher_states_after_a_resume_with_nothing_left_to_learn_come_from_a_fresh_rollout(tmp_path):
    """A run killed between a game's last update and its consolidation resumes with learn() doing
    nothing: the Fisher, drift and replay states must still be real frames of that game."""
    cfg = load_config(None, {
        "games": "kungfu", "method": "ft", "steps_per_game": 128, "env.n_envs": 2, "ppo.n_steps": 64,
        "ppo.n_minibatches": 2, "features_dim": 64, "fisher_samples": 64, "device": "cpu", "seed": 0})
    learner = AtariLearner(cfg)
    method = make_method("ft", learner.trunk)
    learner.begin_task(0, method)
    learner.learn(0, cfg.steps_per_game, lambda s: None)
    write_checkpoint(tmp_path / "progress.pt", learner, method, tasks_done=0, resumable=True)
    from blip_rl.continual.checkpoint import read_checkpoint

    resumed = AtariLearner(cfg)
    resumed.restore(read_checkpoint(tmp_path / "progress.pt"), make_method("ft", resumed.trunk))
    resumed.begin_task(0, method)
    assert resumed.learn(0, cfg.steps_per_game, lambda s: None) is True and resumed.global_step == 128
    inputs = resumed.fisher_data(0).inputs
    assert resumed.global_step == 128  # the extra rollout is not counted
    assert inputs.shape == (64, 4, 84, 84) and int(inputs.float().std(dim=0).mean() > 0)  # real, varied frames
