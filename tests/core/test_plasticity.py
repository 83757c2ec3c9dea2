"""Plasticity diagnostics on exact cases, and the defining property of each plasticity baseline
(ReDo, L2 Init, soft shrink-and-perturb)."""
import pytest
import torch
from torch import nn

from blip_rl.core import BlipConv2d, BlipLinear, make_method
from blip_rl.core.plasticity import capacity_left, dormant_ratio, effective_rank, layer_activations, unit_scores


# -- metrics on exact cases -------------------------------------------------------------------------
@pytest.mark.parametrize("rank", [1, 3, 7])
def test_a_feature_matrix_of_known_rank_has_that_effective_rank(rank):
    g = torch.Generator().manual_seed(rank)
    q, _ = torch.linalg.qr(torch.randn(64, rank, generator=g, dtype=torch.float64))
    p, _ = torch.linalg.qr(torch.randn(32, rank, generator=g, dtype=torch.float64))
    features = q @ torch.diag(torch.full((rank,), 3.0, dtype=torch.float64)) @ p.T  # rank singular values of 3
    assert effective_rank(features.float()) == rank
    assert effective_rank(torch.zeros(10, 5)) == 0


def test_effective_rank_counts_singular_values_to_99_percent_of_their_sum():
    # singular values 10, 1, 0.05 (sum 11.05): 10 + 1 = 11 >= 0.99 * 11.05 = 10.94, 10 < 10.94
    features = torch.diag(torch.tensor([10.0, 1.0, 0.05]))
    assert effective_rank(features) == 2
    assert effective_rank(features, delta=0.0) == 3


@pytest.mark.parametrize("k, n", [(0, 8), (3, 8), (8, 8)])
def test_a_layer_with_k_dead_units_of_n_has_dormant_ratio_k_over_n(k, n):
    acts = torch.rand(50, n, generator=torch.Generator().manual_seed(0)) + 0.5
    acts[:, :k] = 0.0
    assert dormant_ratio(acts, tau=0.0) == pytest.approx(k / n)
    conv = acts.view(50, n, 1, 1).expand(50, n, 3, 3)  # a conv channel: averaged over positions too
    assert dormant_ratio(conv, tau=0.0) == pytest.approx(k / n)


def test_unit_scores_are_normalized_by_the_layer_mean():
    acts = torch.tensor([[1.0, 3.0, 0.0, 0.0]])
    assert torch.allclose(unit_scores(acts), torch.tensor([1.0, 3.0, 0.0, 0.0]))
    assert dormant_ratio(acts, tau=1.0) == 0.75  # a score of exactly tau is dormant


def test_capacity_left_of_a_fresh_and_a_fully_frozen_blip_layer():
    layer = BlipLinear(4, 3)
    assert capacity_left(layer) == (1.0, 0.0)
    layer.weight_bits.fill_(layer.max_bits)
    assert capacity_left(layer) == (0.0, 1.0)
    layer.weight_bits.zero_()
    layer.weight_bits[0] = layer.max_bits // 2  # one row of 3 half frozen
    free, full = capacity_left(layer)
    assert free == pytest.approx(1 - 0.5 / 3) and full == 0.0


def test_layer_activations_are_each_layers_post_relu_output():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(5, 3)
    acts = layer_activations(net, lambda: net(x))
    assert set(acts) == {"0", "2"}
    assert torch.equal(acts["0"], torch.relu(net[0](x)))
    assert not net[0]._forward_hooks and not net[1]._forward_hooks  # the hooks are gone
    normed = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4, elementwise_affine=False), nn.ReLU())
    acts = layer_activations(normed, lambda: normed(x))
    assert torch.equal(acts["0"], normed(x))  # after the norm: the ReLU's output


# -- ReDo -------------------------------------------------------------------------------------------
def _trunk():
    torch.manual_seed(0)
    return nn.Sequential(BlipConv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), BlipLinear(4 * 3 * 3, 6), nn.ReLU())


def test_redo_recycles_a_unit_made_dormant_by_hand_and_leaves_the_others_bit_identical():
    trunk = _trunk()
    method = make_method("redo", trunk, tau=0.0, interval=1, batch=64)
    opt = torch.optim.Adam(trunk.parameters(), lr=1e-3)
    method.attach_optimizer(opt)
    x = torch.rand(64, 2, 5, 5)
    trunk(x).sum().backward()  # a training forward (the batch ReDo scores) and Adam moments
    opt.step()
    conv, fc = trunk[0], trunk[3]
    with torch.no_grad():  # conv channel 1 dead: every output below zero
        conv.weight[1] = -conv.weight[1].abs() - 1e-3
        conv.bias[1] = -0.5
    trunk(x)  # the update's last training forward, with the dead channel
    before = {n: p.detach().clone() for n, p in trunk.named_parameters()}
    moments = {n: opt.state[p]["exp_avg"].clone() for n, p in trunk.named_parameters()}
    dead_fc = layer_activations(trunk, lambda: trunk(x))["3"].abs().sum(0) == 0  # dead FC units, if any
    method.after_update()
    after = dict(trunk.named_parameters())
    assert not torch.equal(after["0.weight"][1], before["0.weight"][1])  # fresh incoming weights
    assert float(after["0.bias"][1].detach()) == 0.0
    keep = torch.ones(4, dtype=torch.bool)
    keep[1] = False
    assert torch.equal(after["0.weight"][keep], before["0.weight"][keep])  # the others, bit for bit
    assert torch.equal(after["0.bias"][keep], before["0.bias"][keep])
    cols = fc.weight.detach().view(6, 4, 9)
    assert torch.all(cols[~dead_fc][:, 1] == 0)  # outgoing weights of channel 1 zeroed (rows kept)
    kept_cols = before["3.weight"].view(6, 4, 9)[:, keep]
    assert torch.equal(cols[~dead_fc][:, keep], kept_cols[~dead_fc])
    assert torch.all(opt.state[conv.weight]["exp_avg"][1] == 0)  # its moments reset
    assert torch.equal(opt.state[conv.weight]["exp_avg"][keep], moments["0.weight"][keep])
    assert method.recycled >= 1


def test_redo_touches_nothing_without_dormant_units_and_counts_updates_across_resume():
    trunk = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    with torch.no_grad():
        trunk[0].weight.copy_(torch.eye(4, 3))
        trunk[0].bias.fill_(1.0)  # every unit active
    method = make_method("redo", trunk, interval=2)
    trunk(torch.rand(8, 3))
    before = [p.detach().clone() for p in trunk.parameters()]
    method.after_update()
    method.after_update()  # the second update recycles (none dormant)
    assert all(torch.equal(a, b) for a, b in zip(before, trunk.parameters()))
    again = make_method("redo", trunk, interval=2)
    again.load_state_dict(method.state_dict())
    assert again.updates == 2 and again.recycled == 0


@pytest.mark.parametrize("opts, what", [({"tau": -0.1}, "tau"), ({"interval": 0}, "interval"),
                                        ({"batch": 0}, "batch")])
def test_redo_options_out_of_range_are_refused(opts, what):
    from blip_rl.core import MethodError

    with pytest.raises((MethodError, ValueError), match=what):
        make_method("redo", _trunk(), **opts)


# -- L2 Init ----------------------------------------------------------------------------------------
def test_l2_init_penalty_is_zero_at_initialization_and_grows_away_from_it():
    trunk = _trunk()
    method = make_method("l2-init", trunk, strength=0.5)
    assert float(method.penalty().detach()) == 0.0
    with torch.no_grad():
        trunk[3].bias.add_(0.1)
    assert float(method.penalty()) == pytest.approx(0.5 * 6 * 0.1 ** 2, rel=1e-5)
    again = make_method("l2-init", _trunk(), strength=0.5)  # same init (seed 0), state from the first
    again.load_state_dict(method.state_dict())
    assert all(torch.equal(again.initial[n], method.initial[n]) for n in method.initial)


def test_l2_init_negative_strength_is_refused():
    with pytest.raises((ValueError,), match="strength"):
        make_method("l2-init", _trunk(), strength=-1.0)


# -- soft shrink-and-perturb ------------------------------------------------------------------------
def test_soft_shrink_perturb_applies_its_map_once_after_every_step_and_survives_resume():
    trunk = _trunk()
    method = make_method("shrink-perturb", trunk, schedule="step", epsilon=0.1)
    std = dict(method.init_std)
    opt = torch.optim.SGD(trunk.parameters(), lr=0.0)  # the step itself moves nothing
    method.attach_optimizer(opt)
    for step in range(3):
        before = {n: p.detach().clone() for n, p in trunk.named_parameters()}
        torch.manual_seed(100 + step)
        trunk(torch.rand(4, 2, 5, 5)).sum().backward()
        rng = torch.get_rng_state()
        opt.step()
        torch.set_rng_state(rng)  # the same draws, by hand: theta <- 0.9 theta + 0.1 sigma xi
        for n, p in trunk.named_parameters():
            expected = 0.9 * before[n]
            if std[n] > 0:
                expected = expected + 0.1 * std[n] * torch.randn_like(p)
            assert torch.allclose(p.detach(), expected, atol=1e-7), (step, n)
    assert method.steps == 3
    method.start_task(2)  # the soft form has no per-task map
    resumed = make_method("shrink-perturb", _trunk(), schedule="step", epsilon=0.1)
    resumed.load_state_dict(method.state_dict())
    assert resumed.steps == 3 and resumed.init_std == method.init_std


def test_shrink_perturb_per_task_is_unchanged_and_bad_schedules_are_refused():
    trunk = _trunk()
    method = make_method("shrink-perturb", trunk)
    opt = torch.optim.SGD(trunk.parameters(), lr=0.0)
    method.attach_optimizer(opt)
    before = [p.detach().clone() for p in trunk.parameters()]
    trunk(torch.rand(4, 2, 5, 5)).sum().backward()
    opt.step()  # schedule task: nothing after a step
    assert all(torch.equal(a, b) for a, b in zip(before, trunk.parameters())) and method.steps == 0
    with pytest.raises(ValueError, match="schedule"):
        make_method("shrink-perturb", _trunk(), schedule="epoch")
    with pytest.raises(ValueError, match="epsilon"):
        make_method("shrink-perturb", _trunk(), schedule="step", epsilon=2.0)
