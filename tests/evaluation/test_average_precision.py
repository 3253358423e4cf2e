"""Step-wise AP (scikit-learn >= 0.19) and its recall-scaled form."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from ps_tf.evaluation import average_precision as ap_lib


def test_hand_computed_ranking():
    # Ranked: TP, FP, TP, FP -> precision 1 at recall 1/2 and 2/3 at recall 1.
    ap = ap_lib.average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6])
    assert ap == pytest.approx((1.0 + 2.0 / 3.0) / 2.0, abs=1e-12)


def test_ties_form_one_threshold():
    # A TP tied with an FP at the top: one threshold with precision 1/2, whatever their order.
    assert ap_lib.average_precision([1, 0, 0], [0.9, 0.9, 0.5]) == pytest.approx(0.5)
    assert ap_lib.average_precision([0, 1, 0], [0.9, 0.9, 0.5]) == pytest.approx(0.5)


def test_not_interpolated():
    # FP, TP, TP: the step-wise AP is (1/2 + 2/3) / 2; the trapezoid of sklearn <= 0.18 differs.
    ap = ap_lib.average_precision([0, 1, 1], [3.0, 2.0, 1.0])
    assert ap == pytest.approx((0.5 + 2.0 / 3.0) / 2.0)


def test_no_positive_gives_zero():
    assert ap_lib.average_precision([0, 0], [0.3, 0.2]) == 0.0


def test_rejects_bad_input():
    with pytest.raises(ValueError, match='labels but'):
        ap_lib.average_precision([1, 0], [0.5])
    with pytest.raises(ValueError, match='no items'):
        ap_lib.average_precision([], [])


@pytest.mark.parametrize('seed', range(20))
def test_matches_sklearn_on_random_input_with_ties(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, 300))
    y_true = rng.random(size) < rng.uniform(0.05, 0.6)
    y_true[rng.integers(size)] = True
    y_score = rng.random(size).astype(np.float32)
    if seed % 2:
        y_score = np.round(y_score * 5) / 5          # many ties
    expected = average_precision_score(y_true, y_score)
    assert ap_lib.average_precision(y_true, y_score) == pytest.approx(expected, abs=1e-12)


def test_recall_scaled_form_equals_sklearn_times_recall():
    # Query 0: 3 GT, TPs at ranks 1 and 3 of 5 detections; query 1: 2 GT, no TP.
    y_true = np.array([1, 0, 1, 0, 0])
    y_score = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    ap = ap_lib.recall_scaled_average_precision(
        query_of_tp=np.array([0, 0]), tp_at_or_above=np.array([1, 2]),
        ranked_at_or_above=np.array([1, 3]), count_gt=np.array([3, 2]))
    expected = average_precision_score(y_true, y_score) * 2 / 3
    np.testing.assert_allclose(ap, [expected, 0.0], atol=1e-12)
    assert ap[0] == pytest.approx((1 / 1 + 2 / 3) / 3)
