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
