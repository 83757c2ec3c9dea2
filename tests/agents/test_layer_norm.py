"""The LayerNorm trunk option (config ``layer_norm``): parameter-free norms between each layer
and its ReLU, the same parameters as without them, and BLIP's frozen intervals hold with it."""
import numpy as np
import pytest
import torch
from gymnasium import spaces

from blip_rl.agents.extractors import BlipAtariCNN, BlipMinAtarCNN, BlipMLP
from blip_rl.core import Blip, blip_layers


@pytest.mark.parametrize("cls, space", [
    (BlipAtariCNN, spaces.Box(0, 255, (4, 84, 84), np.uint8)),
    (BlipMinAtarCNN, spaces.Box(0, 1, (10, 10, 10), np.uint8)),
    (BlipMLP, spaces.Box(-1, 1, (7,), np.float32)),
])
def test_layer_norm_adds_norms_but_no_parameters(cls, space):
    torch.manual_seed(0)
    plain = cls(space)
    torch.manual_seed(0)
    normed = cls(space, layer_norm=True)
    assert [p.shape for p in plain.parameters()] == [p.shape for p in normed.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), normed.parameters()))  # same init draws
    norms = [m for m in normed.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == len(list(blip_layers(normed))) and not any(list(m.parameters()) for m in norms)
    x = torch.rand(5, *space.shape)
    features = normed(x)
    assert features.shape == (5, normed.features_dim) and bool((features >= 0).all())


def test_blip_frozen_intervals_hold_with_a_layer_norm_trunk():
    torch.manual_seed(0)
    trunk = BlipMinAtarCNN(spaces.Box(0, 1, (10, 10, 10), np.uint8), layer_norm=True)
    method = Blip(trunk)
    g = torch.Generator().manual_seed(0)
    for _, layer in blip_layers(trunk):  # some bits frozen, as after a first task
        layer.consolidate_({p: torch.rand(getattr(layer, p).shape, generator=g) * 1e-9
                            for p in layer.blip_param_names()})
    frozen = {n: (l.weight_anchor.clone(), l.weight_bits.clone(), l.bound("weight")) for n, l in blip_layers(trunk)}
    opt = torch.optim.SGD(trunk.parameters(), lr=10.0)
    method.attach_optimizer(opt)
    for _ in range(5):
        opt.zero_grad()
        trunk(torch.rand(16, 10, 10, 10, generator=g)).square().sum().backward()
        opt.step()
    for name, layer in blip_layers(trunk):
        anchor, bits, bound = frozen[name]
        assert bits.float().mean() > 1
        assert torch.all((layer.weight.detach() - anchor).abs() <= bound * torch.exp2(-bits.float()) + 4e-7 * bound)
