"""The paper's nets: BLIP trunk, plain heads, no batch norm, exact Fisher, rebuild from kwargs."""
import pytest
import torch
from torch import nn

from blip_rl.classification.models import MLP, AlexNet, build_model
from blip_rl.core import BlipLayer, FisherData, blip_layers, fisher_diagonal, make_method, supported_layers


def test_mlp_is_the_authors_q_mlp():
    m = MLP(input_shape=(1, 28, 28), head_sizes=[2, 2, 2], hidden=1200)
    linears = [l for _, l in blip_layers(m.trunk)]
    assert [(l.in_features, l.out_features) for l in linears] == [(784, 1200)]
    assert all(type(h) is nn.Linear and h.in_features == 1200 for h in m.heads)
    assert m(torch.randn(4, 1, 28, 28), 2).shape == (4, 2)
    deeper = MLP(input_shape=(1, 8, 8), head_sizes=[10], hidden=16, hidden_layers=3)
    assert len(list(blip_layers(deeper.trunk))) == 3


@pytest.mark.parametrize("size,flat", [(32, 256 * 2 * 2), (84, 256 * 7 * 7)])
def test_alexnet_shapes_follow_the_authors(size, flat):
    m = AlexNet(input_shape=(3, size, size), head_sizes=[2, 20], conv_mult=0.125, fc_width=32)
    convs = [l for _, l in blip_layers(m.trunk) if isinstance(l, nn.Conv2d)]
    assert [c.kernel_size[0] for c in convs] == [size // 8, size // 10, 2]
    assert [c.out_channels for c in convs] == [8, 16, 32]
    fc1 = [l for _, l in blip_layers(m.trunk) if isinstance(l, nn.Linear)][0]
    assert fc1.in_features == flat // 8  # 256 * mult channels
    assert m(torch.randn(3, 3, size, size), 1).shape == (3, 20)


def test_trunk_has_no_batch_norm_and_only_blip_layers():
    for m in (MLP(input_shape=(1, 8, 8), head_sizes=[2], hidden=8),
              AlexNet(input_shape=(3, 32, 32), head_sizes=[2], conv_mult=0.1, fc_width=8)):
        assert not any(isinstance(x, nn.modules.batchnorm._BatchNorm) for x in m.modules())
        assert all(isinstance(x, BlipLayer) for x in supported_layers(m.trunk).values())
        make_method("blip", m.trunk)  # accepts the trunk (refuses plain layers)


def test_init_is_bounded_normal_with_zero_bias():
    torch.manual_seed(0)
    m = MLP(input_shape=(1, 28, 28), head_sizes=[2], hidden=300)
    layer = next(l for _, l in blip_layers(m.trunk))
    assert layer.weight.abs().max() <= layer.bound("weight")
    assert layer.weight.std().item() == pytest.approx((1 / 784) ** 0.5, rel=0.05)
    assert torch.count_nonzero(layer.bias) == 0


def test_fisher_in_eval_mode_is_deterministic_despite_dropout():
    torch.manual_seed(0)
    m = AlexNet(input_shape=(3, 32, 32), head_sizes=[3], conv_mult=0.1, fc_width=16).eval()
    layers = dict(blip_layers(m.trunk))
    x = torch.randn(6, 3, 32, 32)
    f = [fisher_diagonal(layers, FisherData(x, lambda v: m(v, 0), generator=torch.Generator().manual_seed(1)))
         for _ in range(2)]
    for name in layers:
        assert torch.equal(f[0][name]["weight"], f[1][name]["weight"])
        assert f[0][name]["weight"].sum() > 0


def test_build_model_round_trip_and_errors():
    m = build_model("alexnet", input_shape=[3, 32, 32], head_sizes=[2, 2], conv_mult=0.1, fc_width=8, f_prior=1e-9)
    kwargs = dict(m.constructor_kwargs)
    again = build_model(kwargs.pop("arch"), **kwargs)
    again.load_state_dict(m.state_dict())
    x = torch.randn(2, 3, 32, 32)
    m.eval(), again.eval()
    assert torch.equal(m(x, 1), again(x, 1))
    assert float(next(l for _, l in blip_layers(again.trunk)).fisher_prior) > 0
    with pytest.raises(ValueError, match="unknown model arch"):
        build_model("resnet", input_shape=[1, 8, 8], head_sizes=[2])
    with pytest.raises(ValueError, match="unknown model option"):
        build_model("mlp", input_shape=[1, 8, 8], head_sizes=[2], width=3)
    with pytest.raises(ValueError, match="use arch 'mlp'"):
        build_model("alexnet", input_shape=[1, 8, 8], head_sizes=[2])
