"""BLIP layer state: buffers, save/load, constant memory, conversion, isolation of the core."""
import io
import subprocess
import sys

import pytest
import torch
from torch import nn

from blip_rl.core import BlipConv2d, BlipLinear, blip_layers, state_bytes, to_blip


def _consolidate_random(model, seed):
    g = torch.Generator().manual_seed(seed)
    for _, layer in blip_layers(model):
        layer.consolidate_({n: torch.rand(getattr(layer, n).shape, generator=g) for n in layer.blip_param_names()})


def test_state_is_nine_bytes_per_parameter_and_constant_in_tasks():
    model = nn.Sequential(BlipConv2d(4, 8, 3), nn.ReLU(), nn.Flatten(), BlipLinear(8 * 6 * 6, 16))
    before, count = state_bytes(model)
    assert before == 9 * count
    for t in range(5):
        _consolidate_random(model, t)
    assert state_bytes(model) == (before, count)
    assert sum(b.numel() * b.element_size() for b in model.state_dict().values()) == \
        sum(b.numel() * b.element_size() for b in nn.Sequential(BlipConv2d(4, 8, 3), nn.ReLU(), nn.Flatten(),
                                                                 BlipLinear(8 * 6 * 6, 16)).state_dict().values())


def test_bits_anchors_and_fisher_survive_save_and_load():
    torch.manual_seed(0)
    model = nn.Sequential(BlipConv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), BlipLinear(4 * 3 * 3, 5))
    _consolidate_random(model, 1)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    clone = nn.Sequential(BlipConv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), BlipLinear(4 * 3 * 3, 5))
    clone.load_state_dict(torch.load(buf))
    for (_, a), (_, b) in zip(blip_layers(model), blip_layers(clone)):
        for name in a.blip_param_names():
            for suffix in ("anchor", "bits", "fisher", "lo", "hi"):
                assert torch.equal(getattr(a, f"{name}_{suffix}"), getattr(b, f"{name}_{suffix}")), suffix
        assert int(b.num_tasks) == 1
        assert b.weight_bits.dtype == torch.uint8


def test_to_blip_converts_supported_layers_and_refuses_others():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    w = model[3].weight.detach().clone()
    to_blip(model)
    assert isinstance(model[0], BlipConv2d) and isinstance(model[3], BlipLinear)
    assert torch.equal(model[3].weight.detach(), w)
    with pytest.raises(ValueError, match="BatchNorm2d"):
        to_blip(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)))


def test_grouped_conv_is_refused():
    with pytest.raises(ValueError, match="groups=1"):
        BlipConv2d(4, 4, 3, groups=2)


def test_prior_cannot_change_after_first_task():
    layer = BlipLinear(3, 2)
    layer.set_prior(1e-3)
    assert layer.weight_fisher.flatten().tolist() == pytest.approx([3e-3] * 6)
    _consolidate_random(nn.Sequential(layer), 0)
    with pytest.raises(ValueError, match="before the first task"):
        layer.set_prior(1e-3)


def test_core_imports_no_sb3_or_gymnasium():
    code = (
        "import sys, blip_rl.core, blip_rl.core.methods, blip_rl.core.fisher;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('stable_baselines3', 'gymnasium', 'ale_py')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
