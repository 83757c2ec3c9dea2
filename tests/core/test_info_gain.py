"""Information gain and bit growth against hand-computed values, for both rules."""
import math

import pytest
import torch

from blip_rl.core import BlipLinear, bit_growth, information_gain, updated_fisher


def test_paper_rule_hand_computed():
    f_old, f_t = torch.tensor([1.0, 1.0, 2.0]), torch.tensor([3.0, 0.0, 14.0])
    # t = 1: IG = 1/2 log2((F_old + F_t) / F_old)
    ig = information_gain(f_old, f_t, 1, "paper")
    assert ig.tolist() == pytest.approx([1.0, 0.0, 1.5])
    assert updated_fisher(f_old, f_t, 1, "paper").tolist() == pytest.approx([2.0, 0.5, 8.0])
    # t = 3: IG = 1/2 log2((3 F_old + F_t) / (3 F_old))
    ig3 = information_gain(torch.tensor([1.0]), torch.tensor([45.0]), 3, "paper")
    assert ig3.item() == pytest.approx(0.5 * math.log2(48 / 3))
    assert updated_fisher(torch.tensor([1.0]), torch.tensor([45.0]), 3, "paper").item() == pytest.approx(12.0)


def test_official_rule_hand_computed():
    # k = t - 1 = 0: IG = 1/2 log2((F_t + F_old) / (2 F_old)); F_new = (F_old + F_t) / 2
    ig = information_gain(torch.tensor([1.0, 1.0]), torch.tensor([7.0, 0.0]), 1, "official")
    assert ig.tolist() == pytest.approx([1.0, -0.5])
    assert updated_fisher(torch.tensor([1.0]), torch.tensor([7.0]), 1, "official").item() == pytest.approx(4.0)
    # k = 1: IG = 1/2 log2((F_t + 2 F_old) / (3 F_old))
    ig2 = information_gain(torch.tensor([2.0]), torch.tensor([44.0]), 2, "official")
    assert ig2.item() == pytest.approx(0.5 * math.log2(48 / 6))


def test_bit_growth_ceil_and_clamp():
    ig = torch.tensor([-0.5, 0.0, 0.01, 1.0, 1.2, 30.0])
    bits = torch.tensor([0, 0, 0, 0, 18, 5], dtype=torch.uint8)
    assert bit_growth(ig, bits, 20).tolist() == [0, 0, 1, 1, 2, 15]


@pytest.mark.parametrize("consolidation", ["keep", "overwrite"])
def test_consolidation_end_to_end_on_one_layer(consolidation):
    layer = BlipLinear(2, 1, bias=False, max_bits=20, f_prior=1.0)  # n_entry 2: F_0 = 2
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.30, -0.70]]))
    b = layer.bound("weight")  # 6 / sqrt(2)
    added = layer.consolidate_({"weight": torch.tensor([[6.0, 0.0]])}, rule="paper", consolidation=consolidation)
    # IG = 1/2 log2((2 + 6) / 2) = 1 bit; the second entry learns nothing.
    assert added["weight"].tolist() == [[1, 0]]
    assert layer.weight_fisher.tolist() == [[4.0, 1.0]]
    # Anchor: Q(0.30 / b, 1) * b = round(0.1414 * 2) / 2 * b = 0; Q(., 0) = 0.
    assert layer.weight_anchor.tolist() == [[0.0, 0.0]]
    # The paper keeps theta (within c +- b/2 and c +- b); the authors' code overwrites it with c.
    expected = [[0.0, 0.0]] if consolidation == "overwrite" else [[pytest.approx(0.30), pytest.approx(-0.70)]]
    assert layer.weight.tolist() == expected
    assert int(layer.num_tasks) == 1
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[10.0, 10.0]]))
    layer.clip_()
    assert layer.weight[0, 0].item() == pytest.approx(b / 2)
    assert layer.weight[0, 1].item() == pytest.approx(b * (1 - 2**-20))


def test_bad_rule_and_task_are_refused():
    with pytest.raises(ValueError, match="ig_rule"):
        information_gain(torch.ones(1), torch.ones(1), 1, "nope")
    with pytest.raises(ValueError, match="1-based"):
        information_gain(torch.ones(1), torch.ones(1), 0)


def test_an_unknown_consolidation_is_refused():
    layer = BlipLinear(2, 1, bias=False)
    with pytest.raises(ValueError, match="consolidation must be one of keep, overwrite"):
        layer.consolidate_({"weight": torch.ones(1, 2)}, consolidation="sync")
