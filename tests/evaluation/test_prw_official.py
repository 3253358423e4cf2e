"""Zheng et al.'s original PRW protocol (`prw_official.py`): detection labels, junk, cross-camera
goods, missed people and `compute_AP.m`'s trapezoid AP, on hand-computed cases, and the AP
against a line-by-line transcription of `compute_AP.m`."""

import numpy as np
import pytest

import eval_fixtures
from ps_tf.evaluation import average_precision as ap_lib
from ps_tf.evaluation import evaluator
from ps_tf.evaluation import protocol as protocol_lib
from ps_tf.evaluation import prw_official
from ps_tf.evaluation import search

# The query: person 3 in f0, camera 1.
# f0 (camera 1): person 3 (the query's own box).   f1 (camera 1): person 3 (same camera).
# f2 (camera 2): person 3 and a person without identity (PRW's -2).
# f3 (camera 2): person 3, never detected (missed).   f4 (camera 3): person 7.
GALLERY = eval_fixtures.gallery_from_lists([
    [(0, 0, 50, 100, 3)],
    [(0, 0, 50, 100, 3)],
    [(0, 0, 50, 100, 3), (100, 0, 150, 100, -1)],
    [(0, 0, 50, 100, 3)],
    [(0, 0, 50, 100, 7)],
], cameras=[1, 1, 2, 2, 3])
# (image, x1, y1, x2, y2, detection score, similarity to the query); file order = gallery order.
DETECTIONS = [
    (0, 0, 0, 50, 100, 0.9, 0.99),      # d0: person 3, camera 1: junk (same camera)
    (1, 0, 0, 50, 100, 0.9, 0.90),      # d1: person 3, camera 1: junk (same camera)
    (2, 100, 0, 150, 100, 0.9, 0.85),   # d2: the unidentified person: junk
    (2, 0, 0, 50, 40, 0.9, 0.81),       # d3: IoU 0.4 with person 3: junk (0.3 <= IoU < 0.5)
    (2, 0, 0, 50, 100, 0.9, 0.80),      # d4: person 3, camera 2: good
    (4, 0, 0, 50, 100, 0.9, 0.82),      # d5: person 7: wrong
    (4, 200, 0, 250, 100, 0.9, 0.60),   # d6: nobody (IoU 0): background, wrong
]


def _protocol():
    queries = protocol_lib.QueryAnnotations(
        image_names=GALLERY.names[:1], cameras=np.asarray([1]),
        boxes=np.asarray([[0, 0, 50, 100]], np.float64), person_ids=np.asarray([3]))
    return protocol_lib.Protocol('hand_prw', GALLERY, queries, box_convention='seqnet_prw')


def _kept(rows):
    predictions = eval_fixtures.detections(GALLERY, rows)
    kept = search.GalleryDetections.keep(predictions.det_image_index, predictions.det_boxes,
                                         predictions.det_scores, predictions.det_embeddings,
                                         len(GALLERY.names), 0.5)
    return kept, predictions


def test_detection_labels():
    """Best-IoU box: >= 0.5 its identity (the -2 person: junk), 0.3-0.5 junk, < 0.3 background."""
    kept, _ = _kept(DETECTIONS)
    labels = prw_official.label_detections(_protocol(), kept)
    junk, background = prw_official.JUNK, prw_official.BACKGROUND
    np.testing.assert_array_equal(labels.person_id, [3, 3, junk, junk, 3, 7, background])
    np.testing.assert_array_equal(labels.camera, [1, 1, 2, 2, 2, 3, 3])
    # Boxes: f0 0, f1 1, f2 2 (person 3) and 3 (-1), f3 4, f4 5.
    np.testing.assert_array_equal(labels.taken_box, [0, 1, 3, -1, 2, 5, -1])


def test_hand_computed_official_protocol():
    """Ranking by similarity: d0 .99, d1 .90, d2 .85, d5 .82, d3 .81, d4 .80, d6 .60.

    Junk removed (d0, d1: person 3 in the query's camera; d2: unidentified; d3: IoU-junk), the
    ranking is d5 (wrong) at position 1, d4 (good) at 2, d6 (wrong) at 3. num_good = 1 good
    detection + 1 missed box (person 3 in f3, camera 2) = 2.
    compute_AP.m: the good at position 2 is the 1st good: (R - R_prev) (P_prev + P) / 2 with
    P_prev = 0/1, P = 1/2, R - R_prev = 1/2: AP = 1/2 * (0 + 1/2) / 2 = 1/8. Top-1 0, top-5 1.
    What each rule is worth here:
    - same-camera matches not junk but wrong: good at position 4, AP = 1/2 * (0 + 1/4)/2 = 1/16;
    - unidentified or IoU-junk detections ranked as wrong: position 3, AP = 1/2 * (1/3)/2 = 1/12;
    - the missed box not counted (num_good 1): AP = 1/4;
    - scikit-learn's step-wise AP instead of the trapezoid: 1/2 * 1/2 = 1/4.
    """
    kept, predictions = _kept(DETECTIONS)
    result = prw_official.evaluate(_protocol(), kept, predictions.query_embeddings)
    assert result.average_precision[0] == pytest.approx(1 / 8)
    np.testing.assert_array_equal(result.top_k, [[0.0, 1.0, 1.0]])
    assert (result.count_tp[0], result.count_gt[0]) == (1, 2)


def test_detecting_the_missed_person_raises_recall():
    """Adding d7 on person 3 in f3 (camera 2, similarity 0.7): goods at positions 2 (d4) and 3
    (d7, before d6), num_good 2: AP = 1/2 * [(0 + 1/2)/2 + (1/2 + 2/3)/2] = 1/8 + 7/24 = 5/12."""
    kept, predictions = _kept(DETECTIONS + [(3, 0, 0, 50, 100, 0.9, 0.7)])
    result = prw_official.evaluate(_protocol(), kept, predictions.query_embeddings)
    assert result.average_precision[0] == pytest.approx(5 / 12)
    assert (result.count_tp[0], result.count_gt[0]) == (2, 2)


def test_official_and_seqnet_protocols_differ_through_the_evaluator():
    """The same detections under SeqNet's standard gallery (f1-f4; ground-truth frames f1, f2,
    f3: count_gt 3): d1 .90 TP (f1), d2 .85 F, d5 .82 F, d3 .81 F (IoU 0.4 < 0.5), d4 .80 TP (f2),
    d6 .60 F: AP = (1/1 + 2/5) / 3 = 7/15, top-1 1. Official (above): 1/8, top-1 0."""
    protocol = _protocol()
    predictions = eval_fixtures.detections(GALLERY, DETECTIONS)
    standard, = evaluator.evaluate_predictions(protocol, predictions)
    official, = evaluator.evaluate_predictions(
        protocol, predictions, evaluator.EvalSettings(protocol_style='prw_official'))
    assert (standard['gallery'], standard['mAP'], standard['top1']) == (
        'standard', pytest.approx(7 / 15), 1.0)
    assert (official['protocol'], official['gallery']) == ('prw_official', 'official')
    assert (official['mAP'], official['top1'], official['mean_recall']) == (
        pytest.approx(1 / 8), 0.0, 0.5)
    with pytest.raises(ValueError, match='multi_view does not apply'):
        evaluator.evaluate_predictions(protocol, predictions, evaluator.EvalSettings(
            protocol_style='prw_official', multi_view=True))


def test_equal_similarities_keep_gallery_order():
    """A wrong detection in f4 and the good one in f2 both at similarity 0.5 (junk-free ranking):
    gallery order puts f2's good first, AP = 1/2 * (1 + 1)/2 = 1/2 (num_good 2: f3 missed)."""
    rows = [(2, 0, 0, 50, 100, 0.9, 0.5), (4, 0, 0, 50, 100, 0.9, 0.5)]
    kept, predictions = _kept(rows)
    result = prw_official.evaluate(_protocol(), kept, predictions.query_embeddings)
    assert result.average_precision[0] == pytest.approx(0.5)
    assert result.top_k[0, 0] == 1.0


def _compute_ap_m(good_image, junk_image, index):
    """compute_AP.m (Market-1501 / PRW MATLAB code), transcribed line by line (1-based cmc)."""
    cmc = np.zeros(len(index))
    ngood = len(good_image)
    old_recall, old_precision, ap = 0.0, 1.0, 0.0
    intersect_size, j, good_now, njunk = 0, 0, 0, 0
    for n in range(len(index)):
        flag = 0
        if index[n] in good_image:
            cmc[n - njunk:] = 1
            flag = 1
            good_now += 1
        if index[n] in junk_image:
            njunk += 1
            continue
        if flag == 1:
            intersect_size += 1
        recall = intersect_size / ngood
        precision = intersect_size / (j + 1)
        ap += (recall - old_recall) * ((old_precision + precision) / 2)
        old_recall, old_precision = recall, precision
        j += 1
        if good_now == ngood:
            return ap, cmc
    return ap, cmc


def test_trapezoid_ap_matches_compute_ap_m():
    """Goods at positions 1 and 3 of 3 goods: (1 + 1)/2/3 + (1/2 + 2/3)/2/3 = 19/36; then random
    rankings with junk and never-ranked goods against the transcription."""
    assert ap_lib.trapezoid_average_precision(np.asarray([3, 1]), 3) == pytest.approx(19 / 36)
    assert ap_lib.trapezoid_average_precision(np.zeros(0), 0) == 0.0
    rng = np.random.default_rng(0)
    for _ in range(200):
        length = int(rng.integers(1, 30))
        kind = rng.choice(3, length, p=[0.2, 0.2, 0.6])        # good, junk, wrong
        missed = int(rng.integers(0, 3))
        good = list(np.flatnonzero(kind == 0)) + [1000 + m for m in range(missed)]
        if not good:
            continue
        junk = list(np.flatnonzero(kind == 1))
        expected_ap, cmc = _compute_ap_m(good, junk, list(range(length)))
        position = np.cumsum(kind != 1)[kind == 0]
        assert ap_lib.trapezoid_average_precision(position, len(good)) == pytest.approx(
            expected_ap, abs=1e-12)
        first = position.min() if len(position) else np.inf
        assert (first <= 1) == (cmc[0] == 1)
