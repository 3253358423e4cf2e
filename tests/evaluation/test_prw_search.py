"""PRW search (standard and multi-view galleries) and the SeqNet PRW box convention."""

import numpy as np
import pytest

import eval_fixtures
import seqnet_reference
from ps_tf.evaluation import protocol as protocol_lib
from ps_tf.evaluation import prw
from ps_tf.evaluation import search

# f0: the query frame (camera 1); f1 (camera 1): person 3 annotated twice (A, then B);
# f2 (camera 2): person 3; f3 (camera 2) and f4 (camera 1): other people.
GALLERY = eval_fixtures.gallery_from_lists([
    [(0, 0, 50, 100, 3)],
    [(0, 0, 50, 100, 3), (300, 0, 350, 100, 3)],
    [(10, 0, 60, 100, 3)],
    [(0, 0, 50, 100, 9)],
    [(0, 0, 50, 100, -1)],
], cameras=[1, 1, 2, 2, 1])
DETECTIONS = [
    (0, 0, 0, 50, 100, 0.9, 1.0),       # the query frame: never ranked
    (1, 0, 0, 50, 100, 0.9, 0.5),       # on A, the first box of person 3 in f1: TP
    (1, 300, 0, 350, 100, 0.9, 0.9),    # on B, the duplicate annotation: FP
    (2, 10, 0, 60, 100, 0.9, 0.8),      # TP
    (3, 0, 0, 50, 100, 0.9, 0.7),       # FP
    (4, 0, 0, 50, 100, 0.9, 0.95),      # FP
]


def _protocol():
    queries = protocol_lib.QueryAnnotations(
        image_names=GALLERY.names[:1], cameras=np.asarray([1]),
        boxes=np.asarray([[0, 0, 50, 100]], np.float64), person_ids=np.asarray([3]))
    return protocol_lib.Protocol('hand_prw', GALLERY, queries, box_convention='seqnet_prw')


def _search(multi_view):
    protocol = _protocol()
    predictions = eval_fixtures.detections(GALLERY, DETECTIONS)
    det_image = predictions.aligned_to(GALLERY.names, 1)
    kept = search.GalleryDetections.keep(det_image, predictions.det_boxes, predictions.det_scores,
                                         predictions.det_embeddings, len(GALLERY.names), 0.5)
    result = search.evaluate_search(prw.search_problem(protocol, multi_view), kept,
                                    predictions.query_embeddings)
    aps, accs = seqnet_reference.eval_search_prw(
        protocol, *seqnet_reference.reference_inputs(
            protocol, det_image, predictions.det_boxes, predictions.det_scores,
            predictions.det_embeddings), predictions.query_embeddings, 0.5, not multi_view)
    np.testing.assert_allclose(result.average_precision, aps, atol=1e-12)
    np.testing.assert_array_equal(result.top_k, accs)
    return result


def test_standard_gallery_hand_computed():
    result = _search(multi_view=False)
    # Gallery f1-f4; GT frames f1 (first box only) and f2. Ranked: 0.95 F, 0.9 F, 0.8 T, 0.7 F,
    # 0.5 T.
    assert result.count_gt[0] == 2 and result.count_tp[0] == 2
    assert result.average_precision[0] == pytest.approx((1 / 3 + 2 / 5) / 2)
    np.testing.assert_array_equal(result.top_k[0], [0, 1, 1])


def test_multi_view_removes_every_same_camera_frame():
    problem = prw.search_problem(_protocol(), multi_view=True)
    np.testing.assert_array_equal(problem.gallery_weight[0], [0, 0, 1, 1, 0])
    result = _search(multi_view=True)
    # Gallery f2, f3 only (f1's positive and f4's negative go too): 0.8 T, 0.7 F.
    assert result.count_gt[0] == 1
    assert result.average_precision[0] == pytest.approx(1.0)
    np.testing.assert_array_equal(result.top_k[0], [1, 1, 1])


def test_query_frame_is_excluded_and_first_box_is_the_ground_truth():
    problem = prw.search_problem(_protocol(), multi_view=False)
    np.testing.assert_array_equal(problem.gallery_weight[0], [0, 1, 1, 1, 1])
    np.testing.assert_array_equal(problem.positive_image, [1, 2])
    np.testing.assert_array_equal(problem.positive_box, [[0, 0, 50, 100], [10, 0, 60, 100]])


def test_seqnet_prw_box_convention():
    # Raw (x, y, w, h) -> stored x1 = x, x2 = x + w. SeqNet clips x, y, w, h at 0, then
    # x2 = x + w, then truncates: for x < 0 the right edge is w, not x + w.
    raw = np.asarray([[-1.703, 295.5756, 74.6436, 338.2289],   # docs/datasets.md#prw-files
                      [-2.5, -3.25, 75.0, 80.0],               # integral w, h: no off-by-one
                      [10.9, 20.1, 30.5, 40.6]])
    stored = np.concatenate([raw[:, :2], raw[:, :2] + raw[:, 2:]], axis=1)
    expected = []
    for x, y, w, h in raw:
        x, y, w, h = max(x, 0), max(y, 0), max(w, 0), max(h, 0)
        expected.append(np.asarray([x, y, x + w, y + h]).astype(np.int32))
    converted = protocol_lib.gt_boxes_int32(stored, protocol_lib.SEQNET_PRW)
    np.testing.assert_array_equal(converted, expected)
    np.testing.assert_array_equal(converted[1], [0, 0, 75, 80])
    np.testing.assert_array_equal(protocol_lib.gt_boxes_int32(stored, protocol_lib.TRUNCATE)[1],
                                  [-2, -3, 72, 76])


@pytest.mark.parametrize('seed', range(8))
@pytest.mark.parametrize('multi_view', [False, True])
def test_matches_seqnet_on_random_problems(seed, multi_view, monkeypatch):
    if seed % 2:   # the sparse engine path too
        monkeypatch.setattr(search, 'SPARSE_MAX_FRACTION', 1.1)
    rng = np.random.default_rng(100 + seed)
    protocol = eval_fixtures.random_protocol(rng, style='prw', num_images=30, num_identities=12,
                                             float_boxes=True)
    predictions = eval_fixtures.random_predictions(rng, protocol, quantised=seed % 4 == 0,
                                                   signal=2.0)
    det_image = predictions.aligned_to(protocol.gallery.names, len(protocol.queries))
    kept = search.GalleryDetections.keep(det_image, predictions.det_boxes, predictions.det_scores,
                                         predictions.det_embeddings, len(protocol.gallery.names),
                                         0.5)
    result = search.evaluate_search(prw.search_problem(protocol, multi_view), kept,
                                    predictions.query_embeddings)
    aps, accs = seqnet_reference.eval_search_prw(
        protocol, *seqnet_reference.reference_inputs(
            protocol, det_image, predictions.det_boxes, predictions.det_scores,
            predictions.det_embeddings), predictions.query_embeddings, 0.5, not multi_view)
    np.testing.assert_allclose(result.average_precision, aps, atol=1e-9)
    np.testing.assert_array_equal(result.top_k, accs)
