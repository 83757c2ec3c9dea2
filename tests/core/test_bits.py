"""Quantization and frozen-interval invariants (property tests)."""
import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from blip_rl.core import BlipConv2d, BlipLinear, bit_map, bit_statistics, frozen_interval, quantize
from blip_rl.core.bits import MAX_SUPPORTED_BITS, check_max_bits
from tests._props import examples


@given(n=st.integers(1, 20), k=st.integers(-(2**19), 2**19), bound=st.floats(0.01, 4.0))
def test_quantization_is_exact_on_grid_points(n, k, bound):
    k = max(min(k, 2**n - 1), -(2**n - 1))
    theta = torch.tensor([k / 2**n * bound], dtype=torch.float32)  # the float32 nearest the grid point
    bits = torch.tensor([n], dtype=torch.uint8)
    assert quantize(theta, bits, bound).item() == theta.item()


@given(n=st.integers(0, 24), x=st.floats(-0.999, 0.999), bound=st.floats(0.01, 4.0))
def test_quantization_is_idempotent(n, x, bound):
    bits = torch.tensor([n], dtype=torch.uint8)
    once = quantize(torch.tensor([x * bound], dtype=torch.float32), bits, bound)
    assert torch.equal(quantize(once, bits, bound), once)


def test_zero_bits_quantize_to_zero_and_rounding_is_nearest():
    theta = torch.tensor([0.7, -0.3, 0.3, 0.26])
    bits = torch.tensor([0, 0, 1, 2], dtype=torch.uint8)
    assert quantize(theta, bits, 1.0).tolist() == [0.0, 0.0, 0.5, 0.25]


@settings(max_examples=examples(40), deadline=None)
@given(
    shape=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    max_bits=st.integers(2, MAX_SUPPORTED_BITS),
    seed=st.integers(0, 2**31 - 1),
    steps=st.integers(1, 5),
    strict=st.booleans(),
)
# Found by a random search (issue 12): the clamp to lo landed on a rounding tie at 24 bits.
@example(shape=(1, 2), max_bits=24, seed=0, steps=1, strict=True)
def test_parameters_stay_in_frozen_interval_under_any_optimizer_steps(shape, max_bits, seed, steps, strict):
    torch.manual_seed(seed)
    layer = BlipLinear(shape[1], shape[0], max_bits=max_bits)
    layer.strict_radius = strict
    # Random bits, anchors at quantized values, as after a consolidation.
    with torch.no_grad():
        for name in layer.blip_param_names():
            bits = torch.randint(0, max_bits + 1, getattr(layer, name).shape, dtype=torch.uint8)
            getattr(layer, f"{name}_bits").copy_(bits)
            anchor = quantize(getattr(layer, name), bits, layer.bound(name))
            getattr(layer, f"{name}_anchor").copy_(anchor)
            getattr(layer, name).copy_(anchor)
    layer.refresh_interval()
    opt = torch.optim.SGD(layer.parameters(), lr=10.0)
    opt.register_step_post_hook(lambda *_: layer.clip_())
    for _ in range(steps):
        loss = (layer(torch.randn(3, shape[1])) ** 2).sum() * torch.randn(()).item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for name in layer.blip_param_names():
        p, c = getattr(layer, name).detach(), getattr(layer, f"{name}_anchor")
        n = getattr(layer, f"{name}_bits").float()
        b = layer.bound(name)
        radius = b * torch.exp2(-(n + (1 if strict else 0)))
        radius[n == 0] = b  # no frozen bit: the whole range
        ulp = 2 * torch.finfo(torch.float32).eps * b  # one rounding of c -/+ radius in float32
        assert torch.all((p - c).abs() <= radius + ulp)
        limit = b * (1 - 2.0 ** -max_bits)
        assert torch.all(p.abs() <= limit * (1 + 1e-7))
        full = n >= max_bits
        assert torch.equal(p[full], torch.clamp(c[full], -limit, limit))
        if strict:
            assert torch.equal(quantize(p, getattr(layer, f"{name}_bits"), b)[~full & (n > 0)],
                               c[~full & (n > 0)])


@settings(max_examples=examples(25), deadline=None)
@given(seed=st.integers(0, 2**31 - 1), tasks=st.integers(1, 4), rule=st.sampled_from(["paper", "official"]),
       consolidation=st.sampled_from(["keep", "overwrite"]))
def test_bits_never_decrease_and_stay_below_max(seed, tasks, rule, consolidation):
    torch.manual_seed(seed)
    layer = BlipConv2d(2, 3, 3, max_bits=8, f_prior=1e-3)
    previous = layer.weight_bits.clone()
    limit = layer.bound("weight") * (1 - 2**-8)
    for _ in range(tasks):
        with torch.no_grad():  # training moved the weights since the last consolidation
            layer.weight.add_(0.05 * torch.randn_like(layer.weight))
        layer.clip_()
        before = layer.weight.detach().clone()
        f = {n: torch.rand_like(getattr(layer, n)) ** 4 for n in layer.blip_param_names()}
        layer.consolidate_(f, rule=rule, consolidation=consolidation)
        assert torch.all(layer.weight_bits >= previous)
        assert int(layer.weight_bits.max()) <= 8
        previous = layer.weight_bits.clone()
        if consolidation == "overwrite":  # the authors' code: the parameter sits on its anchor
            assert torch.equal(layer.weight.detach(), torch.clamp(layer.weight_anchor, -limit, limit))
        else:  # the paper: it stays where training put it, already inside its new interval
            assert torch.equal(layer.weight.detach(), before)
            assert torch.all(layer.weight.detach() >= layer.weight_lo) and torch.all(layer.weight.detach() <= layer.weight_hi)


def test_full_bits_give_a_zero_width_interval():
    lo, hi = frozen_interval(torch.tensor([0.25]), torch.tensor([20], dtype=torch.uint8), 1.0, 20)
    assert lo.item() == hi.item() == 0.25


def test_bit_statistics_and_map_shapes():
    layer = BlipConv2d(4, 8, 3)
    layer.weight_bits[0].fill_(20)
    stats = bit_statistics(layer.weight_bits, 20)
    assert stats["frac_all"] == pytest.approx(1 / 8)
    assert stats["frac_any"] == pytest.approx(1 / 8)
    assert stats["mean_bits"] == pytest.approx(20 / 8)
    assert bit_map(layer.weight_bits).shape == (8, 36)
    assert bit_map(layer.bias_bits).shape == (1, 8)


@pytest.mark.parametrize("bad", [0, 25, 33, -1, 2.5, True])
def test_bad_bit_width_is_refused(bad):
    with pytest.raises(ValueError, match="max_bits"):
        check_max_bits(bad)
    with pytest.raises(ValueError, match="max_bits"):
        BlipLinear(3, 2, max_bits=bad)


@pytest.mark.parametrize("bad", [0.0, -1e-3, math.inf, math.nan])
def test_bad_prior_is_refused(bad):
    with pytest.raises(ValueError, match="f_prior"):
        BlipLinear(3, 2, f_prior=bad)
