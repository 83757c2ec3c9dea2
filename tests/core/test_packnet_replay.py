"""PackNet, behaviour-cloning replay and shrink-and-perturb: the property that defines each, and
policy drift, on a small multi-head net (seconds, CPU)."""
import pytest
import torch
from torch import nn

from blip_rl.continual import DriftProbe
from blip_rl.core import FisherData, MethodError, check_options, make_method, resolve_method


class MultiHead(nn.Module):
    def __init__(self, seed=0, heads=3):
        super().__init__()
        torch.manual_seed(seed)
        self.trunk = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU())
        self.heads = nn.ModuleList(nn.Linear(16, 3) for _ in range(heads))

    def outputs(self, x, task):  # the learners' bind(): 1-based task -> (logits, values)
        return self.heads[task - 1](self.trunk(x)), None


def _inputs(task, n=64):
    return torch.randn(n, 4, generator=torch.Generator().manual_seed(100 + task))


def _learn(net, method, task, steps=30, lr=0.1, weight_decay=0.0, momentum=0.0):
    """SGD on task ``task`` (its own random targets) with the method's hooks, as the learners call them."""
    opt = torch.optim.SGD(net.parameters(), lr=lr, weight_decay=weight_decay, momentum=momentum)
    handle = method.attach_optimizer(opt)
    x = _inputs(task)
    y = torch.randint(3, (len(x),), generator=torch.Generator().manual_seed(task))
    for _ in range(steps):
        loss = nn.functional.cross_entropy(net.outputs(x, task)[0], y)
        penalty = method.penalty()
        if penalty is not None:
            loss = loss + penalty
        opt.zero_grad()
        loss.backward()
        method.before_step()
        opt.step()
    handle.remove()


def _task(net, method, task, **kw):
    """One task through the scheduler's order: start, learn, end (with data), retrain if asked."""
    method.start_task(task)
    _learn(net, method, task, **kw)
    method.end_task(task, FisherData(_inputs(task), lambda x: net.outputs(x, task)[0]))
    extra = method.retrain_budget(task, 30)
    if extra:
        _learn(net, method, task, steps=extra, **kw)


def _logits(net, method, task):
    method.before_eval(task)
    try:
        with torch.no_grad():
            return net.outputs(_inputs(task), task)[0].clone()
    finally:
        method.after_eval(task)


def _packnet(net, **options):
    method = make_method("packnet", net.trunk, **options)
    method.bind(net.outputs)
    method.start_sequence(["a", "b", "c"])
    return method


# -- PackNet ----------------------------------------------------------------------------------------
def test_packnet_never_changes_an_earlier_tasks_weights():
    net = MultiHead()
    method = _packnet(net)
    _task(net, method, 1)
    kept = {n: (method.owner[n] == 1, p.detach().clone()) for n, p in net.trunk.named_parameters()}
    # weight decay and momentum move weights that have no gradient: the freeze must hold anyway
    _task(net, method, 2, weight_decay=0.1, momentum=0.9)
    _task(net, method, 3, weight_decay=0.1, momentum=0.9)
    for n, p in net.trunk.named_parameters():
        mask, before = kept[n]
        assert torch.equal(p.detach()[mask], before[mask]), n
    assert all(bool((method.owner[n] == 1).all()) for n, p in net.trunk.named_parameters() if p.dim() == 1)


def test_packnet_splits_the_weights_and_a_task_computes_the_same_forever():
    net = MultiHead()
    method = _packnet(net)
    _task(net, method, 1)
    after_1 = _logits(net, method, 1)
    weights = net.trunk[0].weight
    share = float((method.owner["0.weight"] == 1).float().mean())
    assert share == pytest.approx(1 / 3, abs=0.01)  # capacity 3: a third of each layer per task
    _task(net, method, 2)
    _task(net, method, 3)
    assert torch.equal(_logits(net, method, 1), after_1)  # exactly: its weights and mask never change
    assert bool((method.owner["0.weight"] > 0).all())  # the last task takes what is left
    assert weights.shape == net.trunk[0].weight.shape


def test_packnet_mask_hides_only_the_weights_a_task_does_not_own():
    net = MultiHead()
    method = _packnet(net)
    _task(net, method, 1)
    _task(net, method, 2)
    before = {n: p.detach().clone() for n, p in net.trunk.named_parameters()}
    method.before_eval(1)
    for n, p in net.trunk.named_parameters():
        own = method.owner[n] == 1
        assert torch.equal(p.detach()[own], before[n][own]), n  # task 1's weights untouched
        assert bool((p.detach()[~own] == 0).all()), n  # everything else masked
    method.after_eval(1)
    assert all(torch.equal(p.detach(), before[n]) for n, p in net.trunk.named_parameters())  # restored exactly


def test_packnet_prunes_to_zero_and_retrains_only_the_kept_weights():
    net = MultiHead()
    method = _packnet(net, retrain=0.5)
    method.start_task(1)
    _learn(net, method, 1)
    method.end_task(1)
    pruned = method.owner["0.weight"] == 0
    assert bool((net.trunk[0].weight.detach()[pruned] == 0).all())
    assert method.retrain_budget(1, 30) == 15
    _learn(net, method, 1, steps=15)
    assert bool((net.trunk[0].weight.detach()[pruned] == 0).all())  # free weights stay zero while retraining


def test_packnet_capacity_is_checked_before_the_run():
    assert check_options(resolve_method("packnet"), {"capacity": 3}, n_tasks=3)["capacity"] == 3
    with pytest.raises(MethodError, match="holds 2 tasks .* this sequence has 3"):
        check_options(resolve_method("packnet"), {"capacity": 2}, n_tasks=3)
    method = make_method("packnet", MultiHead().trunk, capacity=2)
    with pytest.raises(MethodError, match="capacity=3"):
        method.start_sequence(["a", "b", "c"])


def test_packnet_state_round_trip():
    net = MultiHead()
    method = _packnet(net)
    _task(net, method, 1)
    other = make_method("packnet", net.trunk)
    other.load_state_dict(method.state_dict())
    assert other.capacity == 3 and other.tasks_done == 1
    assert all(torch.equal(other.owner[n], method.owner[n]) for n in method.owner)


# -- behaviour-cloning replay -------------------------------------------------------------------------
def test_bc_replay_penalty_is_zero_right_after_the_task_and_holds_the_old_policy():
    net = MultiHead()
    method = make_method("bc-replay", net.trunk, samples=32, batch=16)
    method.bind(net.outputs)
    assert method.penalty() is None
    _task(net, method, 1)
    assert method.penalty().item() == 0.0  # the network is the one that made the targets
    assert method.memory_bytes() == 32 * 4 * 4 + 32 * 3 * 4  # inputs + log-probabilities, float32
    # Learning task 2 with the penalty moves task 1's policy less than without it.
    drifts = {}
    for name in ("ft", "bc-replay"):
        net = MultiHead()
        m = make_method(name, net.trunk, **({"samples": 64, "batch": 64, "strength": 10.0} if name == "bc-replay" else {}))
        m.bind(net.outputs)
        probe = DriftProbe(64)
        _task(net, m, 1)
        probe.keep(0, _inputs(1), lambda x, k: net.outputs(x, k + 1)[0])
        _task(net, m, 2, steps=60)
        drifts[name] = probe.measure(0, lambda x, k: net.outputs(x, k + 1)[0])[0]
    assert 0 < drifts["bc-replay"] < 0.5 * drifts["ft"]


def test_bc_replay_state_round_trip():
    net = MultiHead()
    method = make_method("bc-replay", net.trunk, samples=8)
    method.bind(net.outputs)
    _task(net, method, 1)
    other = make_method("bc-replay", net.trunk, samples=8)
    other.load_state_dict(method.state_dict())
    other.bind(net.outputs)
    assert other.penalty().item() == 0.0 and torch.equal(other.buffer[1]["inputs"], method.buffer[1]["inputs"])


# -- shrink and perturb -------------------------------------------------------------------------------
def test_shrink_perturb_shrinks_at_a_new_task_only_once():
    net = MultiHead()
    method = make_method("shrink-perturb", net.trunk, shrink=0.5, perturb=0.0)
    before = [p.detach().clone() for p in net.trunk.parameters()]
    method.start_task(1)  # the first task starts from its own init
    assert all(torch.equal(p, b) for p, b in zip(net.trunk.parameters(), before))
    method.start_task(2)
    assert all(torch.allclose(p, 0.5 * b) for p, b in zip(net.trunk.parameters(), before))
    method.start_task(2)  # a resumed task is not shrunk twice
    assert all(torch.allclose(p, 0.5 * b) for p, b in zip(net.trunk.parameters(), before))
    noisy = make_method("shrink-perturb", net.trunk, shrink=1.0, perturb=0.1)
    noisy.start_task(2)
    assert not all(torch.allclose(p, 0.5 * b) for p, b in zip(net.trunk.parameters(), before))
    again = make_method("shrink-perturb", net.trunk)
    again.load_state_dict(method.state_dict())
    assert again.applied == 2 and again.init_std == method.init_std  # the scale of the untrained trunk


def test_shrink_perturb_noise_has_the_initial_scale():
    net = MultiHead()
    method = make_method("shrink-perturb", net.trunk, shrink=0.0, perturb=1.0)
    init = {n: float(p.detach().std()) for n, p in net.trunk.named_parameters()}
    method.start_task(2)  # shrink 0: the weights become pure noise at their initial scale
    for n, p in net.trunk.named_parameters():
        assert float(p.detach().std()) == pytest.approx(init[n], rel=0.35), n


# -- policy drift -------------------------------------------------------------------------------------
def test_drift_is_zero_for_an_unchanged_network_and_positive_after_fine_tuning():
    net = MultiHead()
    method = make_method("ft-fix", net.trunk)
    probe = DriftProbe(32)
    logits = lambda x, k: net.outputs(x, k + 1)[0]  # noqa: E731
    _task(net, method, 1)
    probe.keep(0, _inputs(1), logits)
    assert probe.measure(0, logits) == (0.0, 0.0)
    _task(net, method, 2)  # ft-fix: the trunk is frozen after task 1, head 1 untouched
    assert probe.measure(0, logits) == (0.0, 0.0)
    ft_net = MultiHead()
    ft = make_method("ft", ft_net.trunk)
    ft_probe = DriftProbe(32)
    ft_logits = lambda x, k: ft_net.outputs(x, k + 1)[0]  # noqa: E731
    _task(ft_net, ft, 1)
    ft_probe.keep(0, _inputs(1), ft_logits)
    _task(ft_net, ft, 2, steps=60)
    kl, changed = ft_probe.measure(0, ft_logits)
    assert kl > 1e-4 and 0 <= changed <= 1


def test_drift_of_blip_with_every_bit_frozen_is_zero():
    from blip_rl.core import to_blip

    net = MultiHead()
    net.trunk = to_blip(net.trunk, max_bits=8)
    method = make_method("blip", net.trunk)
    method.start_task(1)
    _learn(net, method, 1)
    with torch.no_grad():  # freeze every bit: the anchor is the weight, quantized to all 8 bits
        for layer in method.layers.values():
            for name in layer.blip_param_names():
                getattr(layer, f"{name}_bits").fill_(layer.max_bits)
                getattr(layer, f"{name}_anchor").copy_(getattr(layer, name))
            layer.strict_radius = True
            layer.refresh_interval()
            layer.clip_()
    method.tasks_done = 1
    probe = DriftProbe(32)
    logits = lambda x, k: net.outputs(x, k + 1)[0]  # noqa: E731
    probe.keep(0, _inputs(1), logits)
    method.start_task(2)
    _learn(net, method, 2, steps=60)
    kl, changed = probe.measure(0, logits)
    assert kl < 1e-6 and changed == 0.0  # each weight may move within half its last bit only


def test_drift_probe_keeps_a_seeded_sample_and_round_trips():
    probe = DriftProbe(16)
    x = torch.randn(100, 4)
    probe.keep(0, x, lambda x, k: x[:, :3])
    again = DriftProbe(16)
    again.keep(0, x, lambda x, k: x[:, :3])
    assert torch.equal(probe.kept[0]["inputs"], again.kept[0]["inputs"]) and len(probe.kept[0]["inputs"]) == 16
    loaded = DriftProbe(16)
    loaded.load_state_dict(probe.state_dict())
    assert loaded.measure(0, lambda x, k: x[:, :3]) == (0.0, 0.0)
    assert DriftProbe(0).enabled is False
