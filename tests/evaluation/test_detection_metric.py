"""Detection recall and AP: mutual-best-IoU matching, thresholds, labelled-only, against SeqNet."""

import numpy as np
import pytest

import eval_fixtures
import seqnet_reference
from ps_tf.evaluation import detection
from ps_tf.evaluation import protocol as protocol_lib


def _gallery(boxes_per_image, pids_per_image, ignore_per_image=None):
    counts = [len(b) for b in boxes_per_image]
    ignore_per_image = ignore_per_image or [[False] * c for c in counts]
    return protocol_lib.GalleryAnnotations(
        names=np.asarray([f'i{n}.jpg' for n in range(len(counts))]),
        cameras=np.full(len(counts), -1, np.int64),
        box_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        boxes=np.asarray([b for boxes in boxes_per_image for b in boxes],
                         np.float64).reshape(-1, 4),
        person_ids=np.asarray([p for pids in pids_per_image for p in pids], np.int64),
        ignore=np.asarray([i for flags in ignore_per_image for i in flags], bool))


def _evaluate(gallery, det_image, det_boxes, det_scores, **kwargs):
    return detection.evaluate_detection(
        gallery, protocol_lib.gt_boxes_int32(gallery.boxes, 'truncate'),
        np.asarray(det_image), np.asarray(det_boxes, np.float32).reshape(-1, 4),
        np.asarray(det_scores, np.float32), **kwargs)


def test_hand_computed_recall_and_ap_with_an_image_without_detections():
    gallery = _gallery([[[0, 0, 100, 100], [200, 0, 300, 100]], [[0, 0, 50, 100]]],
                       [[1, -1], [2]])
    result = _evaluate(gallery, det_image=[0, 0, 0],
                       det_boxes=[[0, 0, 100, 80],      # IoU 0.8 with GT 0: TP
                                  [0, 0, 100, 60],      # also on GT 0, not its best: FP
                                  [200, 0, 300, 40]],   # IoU 0.4 with GT 1: FP
                       det_scores=[0.9, 0.8, 0.7], det_thresh=0.5)
    # Image 1 has no detection: its GT still counts. Recall 1/3; ranking T F F -> AP_sk 1.
    assert (result.count_tp, result.count_gt, result.num_detections) == (1, 3, 3)
    assert result.recall == pytest.approx(1 / 3)
    assert result.average_precision == pytest.approx(1 / 3)


def test_mutual_best_iou_is_not_greedy_by_score():
    gallery = _gallery([[[0, 0, 100, 100]]], [[1]])
    result = _evaluate(gallery, det_image=[0, 0], det_boxes=[[0, 0, 100, 60], [0, 0, 100, 90]],
                       det_scores=[0.9, 0.5], det_thresh=0.01)
    # The GT's best-IoU detection (0.9) is the low-scoring one: it is the TP, the first an FP.
    # Greedy VOC matching would give AP 1; here the ranking is F T -> AP 0.5.
    assert result.recall == 1.0
    assert result.average_precision == pytest.approx(0.5)


def test_det_threshold_is_inclusive_in_float32():
    gallery = _gallery([[[0, 0, 10, 10]]], [[1]])
    result = _evaluate(gallery, [0], [[0, 0, 10, 10]], [np.float32(0.01)], det_thresh=0.01)
    assert result.num_detections == 1 and result.recall == 1.0


def test_labeled_only_skips_images_without_labelled_people():
    gallery = _gallery([[[0, 0, 100, 100]], [[0, 0, 100, 100]]], [[-1], [3]])
    kwargs = dict(det_image=[0, 1], det_boxes=[[0, 0, 100, 100], [50, 50, 60, 60]],
                  det_scores=[0.9, 0.8], det_thresh=0.5)
    everything = _evaluate(gallery, **kwargs)
    labelled = _evaluate(gallery, labeled_only=True, **kwargs)
    assert (everything.count_tp, everything.count_gt) == (1, 2)
    # Image 0 is skipped entirely: its detection is not an FP, its unlabelled box not a GT.
    assert (labelled.count_tp, labelled.count_gt, labelled.num_detections) == (0, 1, 1)


def test_ignore_regions_are_not_ground_truth_and_empty_images_do_not_crash():
    gallery = _gallery([[[0, 0, 100, 100], [200, 0, 300, 100]], []], [[1, -1], []],
                       [[False, True], []])
    result = _evaluate(gallery, det_image=[0, 0, 1],
                       det_boxes=[[0, 0, 100, 100], [200, 0, 300, 100], [0, 0, 5, 5]],
                       det_scores=[0.9, 0.8, 0.7], det_thresh=0.5)
    assert (result.count_tp, result.count_gt, result.num_detections) == (1, 1, 3)
    assert result.average_precision == pytest.approx(1.0)


def test_no_detection_at_all():
    gallery = _gallery([[[0, 0, 10, 10]]], [[1]])
    result = _evaluate(gallery, [], np.zeros((0, 4)), [], det_thresh=0.5)
    assert (result.recall, result.average_precision, result.count_gt) == (0.0, 0.0, 1)


@pytest.mark.parametrize('seed', range(6))
@pytest.mark.parametrize('labeled_only', [False, True])
def test_matches_seqnet_on_random_galleries(seed, labeled_only):
    rng = np.random.default_rng(seed)
    protocol = eval_fixtures.random_protocol(rng, style='prw' if seed % 2 else 'cuhk_sysu',
                                             float_boxes=bool(seed % 2))
    predictions = eval_fixtures.random_predictions(rng, protocol, quantised=seed % 3 == 0)
    det_image = predictions.aligned_to(protocol.gallery.names, len(protocol.queries))
    annotations, dets, _ = seqnet_reference.reference_inputs(
        protocol, det_image, predictions.det_boxes, predictions.det_scores,
        predictions.det_embeddings)
    for threshold in (0.01, 0.5):
        result = detection.evaluate_detection(
            protocol.gallery, protocol.gallery_gt_boxes(), det_image, predictions.det_boxes,
            predictions.det_scores, det_thresh=threshold, labeled_only=labeled_only)
        recall, ap = seqnet_reference.eval_detection(annotations, dets, det_thresh=threshold,
                                                     labeled_only=labeled_only)
        assert result.recall == pytest.approx(recall, abs=1e-12)
        assert result.average_precision == pytest.approx(ap, abs=1e-12)
