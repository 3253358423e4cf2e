"""At most N detections per gallery image (`EvalSettings.max_detections_per_image`) under both
search protocols, the sweep over N (`sweep.py`) and its bad values, on hand-computed cases."""

import numpy as np
import pytest

import eval_fixtures
from ps_tf.evaluation import evaluator
from ps_tf.evaluation import protocol as protocol_lib
from ps_tf.evaluation import search
from ps_tf.evaluation import sweep

NAN4 = [np.nan] * 4

# PRW style. f0 (camera 1): the query frame, person 3. f1 (camera 2): person 3. f2 (camera 2):
# person 3 and person 9.
PRW_GALLERY = eval_fixtures.gallery_from_lists([
    [(0, 0, 50, 100, 3)],
    [(0, 0, 50, 100, 3)],
    [(0, 0, 50, 100, 3), (100, 0, 150, 100, 9)],
], cameras=[1, 2, 2])
# (image, x1, y1, x2, y2, detection score, similarity to the query)
PRW_DETECTIONS = [
    (0, 0, 0, 50, 100, 0.9, 1.0),        # the query frame: never ranked
    (1, 0, 0, 50, 100, 0.9, 0.8),        # f1, on person 3: TP, best score of f1
    (1, 200, 0, 250, 100, 0.6, 0.9),     # f1, on nobody: FP, second score of f1
    (2, 0, 0, 50, 100, 0.8, 0.7),        # f2, on person 3: TP, best score of f2
    (2, 100, 0, 150, 100, 0.7, 0.95),    # f2, on person 9: FP, second score of f2
]


def _prw_protocol():
    queries = protocol_lib.QueryAnnotations(
        image_names=PRW_GALLERY.names[:1], cameras=np.asarray([1]),
        boxes=np.asarray([[0, 0, 50, 100]], np.float64), person_ids=np.asarray([3]))
    return protocol_lib.Protocol('hand_prw', PRW_GALLERY, queries)


def _prw_row(**settings):
    row, = evaluator.evaluate_predictions(
        _prw_protocol(), eval_fixtures.detections(PRW_GALLERY, PRW_DETECTIONS),
        evaluator.EvalSettings(**settings))
    return row


def test_cap_keeps_the_best_scoring_detections_of_each_image_prw():
    """Standard gallery f1, f2; ground truth in f1 and f2 (count_gt 2).

    No cap (det_thresh 0.5 keeps all four): similarities 0.95 F, 0.9 F, 0.8 T, 0.7 T, so
    AP = (1/3 + 2/4) / 2 = 5/12 and top-1 = 0.
    N = 1: f1 keeps its 0.9-score TP, f2 its 0.8-score TP; ranked 0.8 T, 0.7 T: AP = 1, top-1 = 1.
    (A cap keeping the lowest scores would keep the two FPs: AP 0.)
    """
    uncapped = _prw_row()
    assert uncapped['max_detections_per_image'] is None
    assert (uncapped['mAP'], uncapped['top1']) == (pytest.approx(5 / 12), 0.0)
    capped = _prw_row(max_detections_per_image=1)
    assert capped['max_detections_per_image'] == 1
    assert (capped['mAP'], capped['top1'], capped['mean_recall']) == (pytest.approx(1.0), 1.0,
                                                                      1.0)
    assert _prw_row(max_detections_per_image=2)['mAP'] == pytest.approx(5 / 12)


def test_cap_and_threshold_both_apply():
    """det_thresh 0.75 drops f1's 0.6 FP and f2's 0.7 FP: ranked 0.8 T, 0.7 T, AP 1. Then N = 1
    changes nothing. det_thresh 0.85 leaves f1's TP only: AP = (1/1) / 2 = 0.5, whatever N."""
    assert _prw_row(det_thresh=0.75)['mAP'] == pytest.approx(1.0)
    assert _prw_row(det_thresh=0.75, max_detections_per_image=1)['mAP'] == pytest.approx(1.0)
    assert _prw_row(det_thresh=0.85)['mAP'] == pytest.approx(0.5)
    assert _prw_row(det_thresh=0.85, max_detections_per_image=1)['mAP'] == pytest.approx(0.5)


def test_cap_breaks_equal_scores_by_file_order():
    """Two detections of f1 with equal score 0.5 (the TP first in the file), N = 1 per image."""
    gallery = eval_fixtures.gallery_from_lists([[(0, 0, 50, 100, 3)], [(0, 0, 50, 100, 3)]],
                                               cameras=[1, 2])
    rows = [(1, 0, 0, 50, 100, 0.5, 0.6), (1, 200, 0, 250, 100, 0.5, 0.9)]
    predictions = eval_fixtures.detections(gallery, rows)
    kept = search.GalleryDetections.keep(
        predictions.det_image_index, predictions.det_boxes, predictions.det_scores,
        predictions.det_embeddings, 2, 0.5, max_per_image=1)
    np.testing.assert_array_equal(kept.offsets, [0, 0, 1])
    np.testing.assert_array_equal(kept.boxes, [[0, 0, 50, 100]])
    swapped = search.GalleryDetections.keep(
        predictions.det_image_index, predictions.det_boxes[::-1], predictions.det_scores,
        predictions.det_embeddings, 2, 0.5, max_per_image=1)
    np.testing.assert_array_equal(swapped.boxes, [[200, 0, 250, 100]])


def test_cap_applies_to_the_cuhk_sysu_protocol():
    """One query whose gallery list of size 2 is f1 (holds the person) and f2 (does not).

    f1: TP (score 0.6, similarity 0.5) and FP (score 0.9, similarity 0.9); f2: FP (0.8, 0.7).
    No cap: ranked 0.9 F, 0.7 F, 0.5 T; AP = (1/3) / 1 = 1/3, top-1 0, top-5 1.
    N = 1: f1 keeps its 0.9 FP only; no TP: AP 0, top-5 0.
    """
    gallery = eval_fixtures.gallery_from_lists([
        [(0, 0, 50, 100, 3)], [(0, 0, 50, 100, 3)], [(0, 0, 50, 100, 8)]])
    lists = protocol_lib.GalleryLists(
        offsets=np.asarray([0, 2]), image_index=np.asarray([1, 2]),
        positive_box=np.asarray([[0, 0, 50, 100], NAN4], np.float64))
    queries = protocol_lib.QueryAnnotations(
        image_names=gallery.names[:1], cameras=np.asarray([-1]),
        boxes=np.asarray([[0, 0, 50, 100]], np.float64), person_ids=np.asarray([3]),
        galleries={2: lists})
    protocol = protocol_lib.Protocol('hand_cuhk', gallery, queries)
    predictions = eval_fixtures.detections(gallery, [
        (1, 0, 0, 50, 100, 0.6, 0.5), (1, 200, 0, 250, 100, 0.9, 0.9),
        (2, 0, 0, 50, 100, 0.8, 0.7)])
    row, = evaluator.evaluate_predictions(protocol, predictions,
                                          evaluator.EvalSettings(gallery_sizes=[2]))
    assert (row['mAP'], row['top1'], row['top5']) == (pytest.approx(1 / 3), 0.0, 1.0)
    row, = evaluator.evaluate_predictions(
        protocol, predictions,
        evaluator.EvalSettings(gallery_sizes=[2], max_detections_per_image=1))
    assert (row['mAP'], row['top5'], row['max_detections_per_image']) == (0.0, 0.0, 1)


def test_sweep_picks_the_best_map_and_marks_it():
    """PRW case above: N = 3 and N = 2 keep everything (mAP 5/12), N = 1 gives mAP 1."""
    protocol = _prw_protocol()
    predictions = eval_fixtures.detections(PRW_GALLERY, PRW_DETECTIONS)
    rows, best = sweep.evaluate_sweep(protocol, predictions, evaluator.EvalSettings(), [3, 1, 2])
    assert [row['max_detections_per_image'] for row in rows] == [3, 1, 2]
    assert [row['mAP'] for row in rows] == pytest.approx([5 / 12, 1.0, 5 / 12])
    assert [row['best_of_sweep'] for row in rows] == [False, True, False]
    assert [row['max_detections_per_image'] for row in best] == [1]
    # Equal mAP: the first value listed wins.
    rows, best = sweep.evaluate_sweep(protocol, predictions, evaluator.EvalSettings(), [3, 2])
    assert [row['max_detections_per_image'] for row in best] == [3]
    assert [row['best_of_sweep'] for row in rows] == [True, False]
    table = evaluator.format_table(rows)
    lines = table.splitlines()
    assert 'max dets/image' in lines[1] and lines[1].split()[-1] == 'best'
    assert lines[3].split()[:2] == ['standard', '3'] and lines[3].endswith('*')
    assert not lines[4].endswith('*')
    assert 'by mAP' in lines[-1]


def test_sweep_keeps_each_gallery_apart():
    """CUHK-style sweep over two gallery sizes: a best row per size, chosen by its own mAP."""
    rows = [{'protocol': 'cuhk_sysu', 'gallery_size': 50, 'mAP': 0.5, 'v': 1},
            {'protocol': 'cuhk_sysu', 'gallery_size': 100, 'mAP': 0.2, 'v': 1},
            {'protocol': 'cuhk_sysu', 'gallery_size': 50, 'mAP': 0.4, 'v': 3},
            {'protocol': 'cuhk_sysu', 'gallery_size': 100, 'mAP': 0.3, 'v': 3}]
    assert [(row['gallery_size'], row['v']) for row in sweep.best_rows(rows)] == [(50, 1),
                                                                                  (100, 3)]


@pytest.mark.parametrize('values, message', [
    ([], 'at least one value'),
    ([0], '0 is not an integer >= 1'),
    ([3, -1], '-1 is not an integer >= 1'),
    ([2.5], '2.5 is not an integer'),
    ([5, 3, 5], r'\[5\] listed more than once'),
])
def test_bad_sweep_values_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        sweep.evaluate_sweep(_prw_protocol(),
                             eval_fixtures.detections(PRW_GALLERY, PRW_DETECTIONS),
                             evaluator.EvalSettings(), values)


@pytest.mark.parametrize('cap', [0, -2, 1.5, True])
def test_bad_cap_is_refused(cap):
    with pytest.raises(ValueError, match='max_detections_per_image must be an integer >= 1'):
        evaluator.EvalSettings(max_detections_per_image=cap)
    with pytest.raises(ValueError, match='max_detections_per_image must be an integer >= 1'):
        search.GalleryDetections.keep(np.zeros(1, np.int64), np.zeros((1, 4), np.float32),
                                      np.ones(1, np.float32), np.ones((1, 2), np.float32), 1,
                                      0.5, max_per_image=cap)
