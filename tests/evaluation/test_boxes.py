"""IoU without +1 and the small-box search threshold min(0.5, wh / ((w+10)(h+10)))."""

import numpy as np
import pytest

from ps_tf.evaluation import boxes


def test_paired_iou_hand_values():
    a = np.asarray([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 0, 0]])
    b = np.asarray([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 0, 0]])
    np.testing.assert_allclose(boxes.paired_iou(a, b), [50 / 150, 1.0, 0.0, 0.0])


def test_search_iou_threshold():
    thresholds = boxes.search_iou_threshold(np.asarray([[0, 0, 10, 20], [5, 5, 105, 205],
                                                        [0, 0, 12, 34]]))
    # 10x20: 200 / (20*30) = 1/3; a big box is capped at 0.5; CUHK-SYSU's smallest positive
    # (12x34) gets 408 / 968 = 0.421 (docs/datasets.md#cuhk-sysu-counts).
    np.testing.assert_allclose(thresholds, [1 / 3, 0.5, 408 / 968])


@pytest.mark.parametrize('size, matches', [((10, 20), True), ((100, 200), False)])
def test_same_overlap_matches_only_a_small_person(size, matches):
    w, h = size
    gt = np.asarray([[0, 0, w, h]])
    det = np.asarray([[0.4 * w, 0, 1.4 * w, h]])   # IoU 0.6 / 1.4 = 0.43
    iou = boxes.paired_iou(det, gt)[0]
    assert iou == pytest.approx(0.6 / 1.4)
    assert (iou >= boxes.search_iou_threshold(gt)[0]) == matches
