"""L2, MAS and SI: the property that defines each, on small nets (seconds, CPU)."""
import pytest
import torch
from torch import nn

from blip_rl.core import FisherData, make_method
from blip_rl.metrics import bootstrap_ci


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def _train(net, method, steps=20, lr=0.1, seed=1):
    """SGD on a random regression, with the method's hooks where the learners call them."""
    torch.manual_seed(seed)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    method.attach_optimizer(opt)
    x, y = torch.randn(32, 4), torch.randn(32, 3)
    for _ in range(steps):
        loss = (net(x) - y).square().mean()
        penalty = method.penalty()
        if penalty is not None:
            loss = loss + penalty
        opt.zero_grad()
        loss.backward()
        method.before_step()
        opt.step()


def _data(net, seed=2):
    torch.manual_seed(seed)
    return FisherData(torch.randn(16, 4), net, batch_size=8)


@pytest.mark.parametrize("name", ["l2", "mas", "si"])
def test_penalty_is_zero_at_the_anchor_and_grows_away_from_it(name):
    net = _net()
    method = make_method(name, net, strength=2.0)
    assert method.penalty() is None  # nothing to protect before the first task
    _train(net, method)
    method.end_task(1, _data(net))
    assert method.penalty().item() == 0.0
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05)
    assert method.penalty().item() > 0


def test_l2_weighs_every_weight_alike():
    net = _net()
    method = make_method("l2", net, strength=1.0)
    method.end_task(1)
    method.end_task(2)  # a second anchor: importance stays 1
    assert all(torch.equal(v, torch.ones_like(v)) for v in method.importance.values())
    with torch.no_grad():
        net[0].weight.add_(0.1)
    assert method.penalty().item() == pytest.approx(0.5 * 0.01 * net[0].weight.numel(), rel=1e-5)


def test_mas_needs_no_labels_and_its_importance_is_the_mean_absolute_output_norm_gradient():
    net = _net()
    method = make_method("mas", net, samples=16)
    data = _data(net)
    method.end_task(1, data)
    # The same quantity by hand, one input at a time.
    params = dict(net.named_parameters())
    expected = {n: torch.zeros_like(p) for n, p in params.items()}
    for x in data.inputs.split(1):
        net.zero_grad()
        net(x).square().sum().backward()
        for n, p in params.items():
            expected[n] += p.grad.abs() / len(data.inputs)
    for n in params:
        assert torch.allclose(method.importance[n], expected[n], atol=1e-6), n
    assert all((v >= 0).all() for v in method.importance.values())


def test_si_gives_zero_importance_to_weights_that_never_moved():
    net = _net()
    net[2].weight.requires_grad_(False)  # never moves
    method = make_method("si", net, strength=1.0)
    _train(net, method)
    method.end_task(1)
    assert torch.count_nonzero(method.importance["2.weight"]) == 0
    assert method.importance["0.weight"].sum() > 0  # the weights that moved and lowered the loss


def test_si_state_round_trips_mid_task():
    net = _net()
    method = make_method("si", net)
    _train(net, method, steps=5)
    other = make_method("si", net)
    other.load_state_dict(method.state_dict())
    assert all(torch.equal(other.omega[n], method.omega[n]) for n in method.omega)


def test_bootstrap_ci_on_known_cases():
    # Constant values: every resample has the same mean.
    assert bootstrap_ci([0.7, 0.7, 0.7]) == pytest.approx((0.7, 0.7, 0.7), abs=1e-12)
    # Two values 0 and 1: resampled means are 0, 0.5, 1 with probability 1/4, 1/2, 1/4, so the
    # 95% percentile interval is [0, 1] and the 50% one [0.5, 0.5] (exact enumeration).
    assert bootstrap_ci([0.0, 1.0], n_boot=20_000) == (0.5, 0.0, 1.0)
    assert bootstrap_ci([0.0, 1.0], confidence=0.4, n_boot=20_000)[1:] == (0.5, 0.5)
    # Seeded: the same inputs give the same interval; a wider confidence gives a wider interval.
    values = [0.91, 0.95, 0.93, 0.97, 0.90]
    assert bootstrap_ci(values) == bootstrap_ci(values)
    _, lo95, hi95 = bootstrap_ci(values)
    _, lo50, hi50 = bootstrap_ci(values, confidence=0.5)
    assert lo95 <= lo50 <= sum(values) / 5 <= hi50 <= hi95
    with pytest.raises(ValueError):
        bootstrap_ci([])
