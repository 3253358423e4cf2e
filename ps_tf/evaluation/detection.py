"""Detection recall and AP over the gallery, as SeqNet's `eval_detection`
(docs/evaluation.md#detection-ap-and-recall).

Matching is mutual-best-IoU, not score-ordered greedy matching: a (ground truth, detection) pair is
a true positive when IoU >= `iou_thresh`, the ground truth is the detection's best-IoU box and the
detection is the ground truth's best-IoU detection (argmax over the raw float32 IoU, first index on
ties, detections in file order). Then recall = TP / GT and AP = AP_sklearn(all kept detections)
* recall.

Choices where the reference is silent or crashes: ignore regions are never ground truth (their
detections are ordinary false positives); an image without ground truth (which makes the
reference's `argmax` crash) contributes its kept detections as false positives; with no kept
detection at all, AP is 0.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from absl import logging

from ps_tf.evaluation import average_precision as ap_lib
from ps_tf.evaluation import boxes as boxes_lib
from ps_tf.evaluation import protocol as protocol_lib
from ps_tf.evaluation import segments


@dataclasses.dataclass(frozen=True)
class DetectionResult:
    """Detection metrics over the gallery.

    Attributes:
        average_precision: recall-scaled AP in [0, 1].
        recall: count_tp / count_gt.
        count_tp: matched ground-truth boxes.
        count_gt: ground-truth boxes of the evaluated images.
        num_detections: detections kept by the score threshold (in evaluated images).
    """
    average_precision: float
    recall: float
    count_tp: int
    count_gt: int
    num_detections: int


def evaluate_detection(gallery: protocol_lib.GalleryAnnotations,
                       gt_boxes: np.ndarray,
                       det_image: np.ndarray,
                       det_boxes: np.ndarray,
                       det_scores: np.ndarray,
                       det_thresh: float = 0.01,
                       iou_thresh: float = 0.5,
                       labeled_only: bool = False) -> DetectionResult:
    """Scores gallery detections against the gallery ground truth.

    Args:
        gallery: the gallery annotations (identities, ignore flags, boxes per image).
        gt_boxes: (K, 4) int32 pixel x1, y1, x2, y2 of every gallery box after the protocol's box
            convention (`Protocol.gallery_gt_boxes()`).
        det_image: (M,) int gallery protocol index of each detection.
        det_boxes: (M, 4) float32 pixel x1, y1, x2, y2.
        det_scores: (M,) float32 scores; kept when `score >= det_thresh` (compared in float32).
        det_thresh: score threshold (0.01 gives the numbers SeqNet/NAE/COAT report).
        iou_thresh: IoU a match needs.
        labeled_only: only boxes with an identity are ground truth, and images without one are
            skipped entirely (their detections are not counted).

    Returns:
        A `DetectionResult`.
    """
    num_images = len(gallery.names)
    det_image = np.asarray(det_image, np.int64)
    det_scores = np.asarray(det_scores)
    is_gt = ~gallery.ignore
    if labeled_only:
        is_gt &= gallery.person_ids != protocol_lib.NO_IDENTITY
    gt_image = gallery.box_image[is_gt]
    gt_boxes = np.asarray(gt_boxes).reshape(-1, 4)[is_gt]
    num_gt = np.bincount(gt_image, minlength=num_images)
    evaluated = num_gt > 0 if labeled_only else np.ones(num_images, bool)

    kept = (det_scores >= np.asarray(det_thresh, det_scores.dtype)) & evaluated[det_image]
    kept_ids = np.flatnonzero(kept)
    kept_ids = kept_ids[np.argsort(det_image[kept_ids], kind='stable')]   # by image, file order
    kept_image = det_image[kept_ids]

    gt_start = np.cumsum(num_gt) - num_gt
    pair_det, pair_gt = segments.expand_ranges(gt_start[kept_image], num_gt[kept_image])
    iou = boxes_lib.paired_iou(gt_boxes[pair_gt], det_boxes[kept_ids[pair_det]]).astype(np.float32)
    # Best ground truth of each detection: pairs are ordered by detection, then ground truth.
    best_gt_pair = segments.first_argmax(iou, pair_det, len(kept_ids))
    # Best detection of each ground truth: reorder by ground truth, then detection (file order).
    by_gt = np.lexsort((pair_det, pair_gt))
    best_det = segments.first_argmax(iou[by_gt], pair_gt[by_gt], len(gt_boxes))
    best_det_pair = by_gt[best_det[best_det >= 0]]
    mutual = np.zeros(len(iou), bool)
    mutual[best_gt_pair[best_gt_pair >= 0]] = True
    mutual_gt = np.zeros(len(iou), bool)
    mutual_gt[best_det_pair] = True
    true_pair = mutual & mutual_gt & (iou >= np.float32(iou_thresh))

    is_true = np.zeros(len(kept_ids), bool)
    is_true[pair_det[true_pair]] = True
    count_tp = int(true_pair.sum())
    count_gt = int(num_gt[evaluated].sum())
    if count_gt == 0:
        logging.warning('detection evaluation: no ground-truth box in the gallery')
    recall = count_tp / count_gt if count_gt else 0.0
    if len(kept_ids) == 0:
        logging.warning('detection evaluation: no detection scores >= %s', det_thresh)
        average_precision = 0.0
    else:
        average_precision = ap_lib.average_precision(is_true, det_scores[kept_ids]) * recall
    return DetectionResult(average_precision=average_precision, recall=recall, count_tp=count_tp,
                           count_gt=count_gt, num_detections=len(kept_ids))
