"""The four methods on the two-task toy problem, and the hook interface."""
import pytest
import torch
from torch import nn

from blip_rl.core import Blip, BlipLinear, FisherData, OnlineEWC, make_method
from blip_rl.toy import run_toy


@pytest.fixture(scope="module")
def toy():
    return {m: run_toy(m) for m in ("ft", "blip", "ewc", "ft-fix")}


def test_blip_keeps_task1_while_finetuning_forgets(toy):
    assert toy["ft"].acc_task1_after1 > 0.75 and toy["blip"].acc_task1_after1 > 0.75
    assert toy["ft"].forgetting > 0.05
    assert abs(toy["blip"].forgetting) <= 0.01
    assert toy["blip"].acc_task2_after2 > 0.7  # and it still learns task 2


def test_ewc_and_ft_fix_forget_less_than_ft(toy):
    assert toy["ewc"].forgetting < toy["ft"].forgetting
    assert abs(toy["ft-fix"].forgetting) <= 1e-6


def test_hooks_attach_to_any_optimizer():
    trunk = nn.Sequential(BlipLinear(3, 4))
    method = Blip(trunk)
    trunk[0].consolidate_({"weight": torch.ones(4, 3), "bias": torch.ones(4)})
    before = trunk[0].weight.detach().clone()
    opt = torch.optim.SGD(trunk.parameters(), lr=100.0)
    method.attach_optimizer(opt)
    trunk(torch.randn(2, 3)).sum().backward()
    opt.step()
    radius = trunk[0].bound("weight") * torch.exp2(-trunk[0].weight_bits.float())
    assert torch.all((trunk[0].weight.detach() - before).abs() <= radius * (1 + 1e-6))


def test_blip_without_fisher_data_or_blip_layers_is_a_clear_error():
    with pytest.raises(ValueError, match="needs Fisher data"):
        Blip(nn.Sequential(BlipLinear(3, 2))).end_task(1, None)
    with pytest.raises(ValueError, match="no BLIP layer"):
        Blip(nn.Sequential(nn.ReLU()))
    with pytest.raises(ValueError, match="not BLIP layers"):
        Blip(nn.Sequential(BlipLinear(3, 3), nn.Linear(3, 2)))
    with pytest.raises(ValueError, match="unknown method"):
        make_method("sgd", nn.Linear(2, 2))


def test_ewc_state_round_trips_and_penalty_is_zero_at_anchor():
    trunk = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    ewc = OnlineEWC(trunk, ewc_lambda=10.0)
    assert ewc.penalty() is None
    ewc.end_task(1, FisherData(torch.randn(8, 3), trunk))
    assert ewc.penalty().item() == 0.0
    with torch.no_grad():
        trunk[0].weight.add_(0.1)
    assert ewc.penalty().item() > 0
    other = OnlineEWC(trunk, ewc_lambda=10.0)
    other.load_state_dict(ewc.state_dict())
    assert other.penalty().item() == pytest.approx(ewc.penalty().item())
    with pytest.raises(ValueError, match="cannot be loaded"):
        make_method("ft", trunk).load_state_dict(ewc.state_dict())
