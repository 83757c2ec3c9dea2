import math

import pytest

from blip_rl.metrics import acc, accumulated_normalized, bwt, forgetting


def test_acc_and_bwt_by_hand():
    a = [[0.9, None, None], [0.7, 0.8, None], [0.6, 0.7, 0.95]]
    assert acc(a) == pytest.approx((0.6 + 0.7 + 0.95) / 3)
    assert bwt(a) == pytest.approx(((0.6 - 0.9) + (0.7 - 0.8)) / 2)
    assert forgetting(a) == pytest.approx([0.3, 0.1])


def test_single_task_and_empty():
    assert acc([[0.5]]) == 0.5
    assert math.isnan(bwt([[0.5]]))
    with pytest.raises(ValueError, match="empty"):
        acc([])


def test_accumulated_normalized_counts_missing_as_zero():
    assert accumulated_normalized([1.0, 0.5, None]) == 1.5


# -- learning-curve metrics (forward transfer, AUC) -------------------------------------------------
def test_curve_auc_is_the_time_average_of_a_piecewise_linear_curve():
    from blip_rl.metrics import curve_auc

    assert curve_auc([0, 10], [0.0, 1.0]) == pytest.approx(0.5)
    assert curve_auc([0, 10, 30], [0.0, 1.0, 1.0]) == pytest.approx((5 + 20) / 30)
    assert curve_auc([5], [0.25]) == 0.25
    assert curve_auc([], []) is None
    assert curve_auc([0, 10], [None, 0.4]) == 0.4  # missing points are left out
    # over a given interval: constant before the first point and after the last
    assert curve_auc([10, 20], [0.2, 0.6], start=0, end=40) == pytest.approx((2 + 4 + 12) / 40)


def test_task_auc_uses_the_evaluations_while_that_task_learned():
    from blip_rl.metrics import accumulated_auc, task_auc

    curve = [
        {"step": 10, "task": 0, "raw": [5.0], "normalized": [0.2]},
        {"step": 20, "task": 0, "raw": [9.0], "normalized": [0.6]},
        {"step": 30, "task": 1, "raw": [9.0, 1.0], "normalized": [0.6, None]},
        {"step": 40, "task": 1, "raw": [8.0, 3.0], "normalized": [0.5, None]},
    ]
    assert task_auc(curve, 0) == pytest.approx(0.4)
    assert task_auc(curve, 0, start=0, end=20) == pytest.approx((2 + 4) / 20)  # over the task's own steps
    assert task_auc(curve, 1) is None  # no normalized score: no AUC (raw scores are not comparable)
    assert task_auc(curve, 2) is None
    # accumulated normalized reward 0.2, 0.6, 0.6, 0.5 at steps 10..40 (missing counts 0)
    assert accumulated_auc(curve) == pytest.approx((0.4 + 0.6 + 0.55) * 10 / 30)


def test_forward_transfer_as_continual_world_defines_it():
    from blip_rl.metrics import forward_transfer

    assert forward_transfer(0.6, 0.5) == pytest.approx(0.2)
    assert forward_transfer(0.4, 0.5) == pytest.approx(-0.2)
    assert forward_transfer(0.5, 0.5) == 0.0
    assert forward_transfer(0.9, 1.0) is None and forward_transfer(None, 0.3) is None


def test_plasticity_summaries_read_the_last_evaluation_record():
    from blip_rl.metrics import final_layer_mean, final_plasticity

    curve = [{"step": 1, "task": 0, "raw": [0], "normalized": [0],
              "plasticity": {"a/dormant": 0.5, "a/srank": 10.0, "capacity_free/fc": 1.0}},
             {"step": 2, "task": 1, "raw": [0, 0], "normalized": [0, 0],
              "plasticity": {"a/dormant": 0.2, "b/dormant": 0.4, "a/dormant/fc": 0.9, "a/srank": 8.0,
                             "b/srank": 4.0, "capacity_free/conv": 0.5, "capacity_free/fc": 0.7}}]
    assert final_plasticity(curve, "dormant") == pytest.approx(0.3)  # per-layer keys left out
    assert final_plasticity(curve, "srank") == pytest.approx(6.0)
    assert final_layer_mean(curve, "capacity_free") == pytest.approx(0.6)
    assert final_plasticity([{"step": 1, "task": 0, "raw": [0], "normalized": [0]}], "dormant") is None


def test_slope_of_learning_speed_against_task_index():
    from blip_rl.metrics import slope

    assert slope([0.9, 0.6, 0.3]) == pytest.approx(-0.3)
    assert slope([0.5, None, 0.7]) == pytest.approx(0.1)
    assert slope([0.5]) is None and slope([]) is None
