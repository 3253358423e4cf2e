"""Box overlap as the person-search protocols compute it (docs/evaluation.md#box-overlap-iou).

All boxes here are pixel x1, y1, x2, y2 in continuous coordinates: area = (x2 - x1) * (y2 - y1),
no +1. Arithmetic is float64; ground-truth boxes arrive as int32 (the protocols' convention, see
`protocol.py`) and detections as float32, both of which float64 represents exactly. The reference's
scalar `_compute_iou` mixes float32 and float64 arithmetic (a detection's own area is a float32
product); the two agree exactly whenever the products are exact (integer or half-pixel
coordinates, ...) and otherwise to ~1e-7, which matters only for an IoU within 1e-7 of a threshold.
"""

from __future__ import annotations

import numpy as np

SMALL_BOX_MARGIN = 10.0
MAX_SEARCH_IOU_THRESHOLD = 0.5


def paired_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU of each box of `boxes_a` with the box at the same row of `boxes_b`.

    Args:
        boxes_a: (P, 4) pixel x1, y1, x2, y2.
        boxes_b: (P, 4) pixel x1, y1, x2, y2.

    Returns:
        (P,) float64 IoU; a pair whose union is 0 (two empty boxes) gives 0.
    """
    a = np.asarray(boxes_a, np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, np.float64).reshape(-1, 4)
    if a.shape != b.shape:
        raise ValueError(f'paired_iou needs boxes of equal shape, got {a.shape} and {b.shape}')
    inter_w = np.maximum(0.0, np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]))
    inter_h = np.maximum(0.0, np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]))
    inter = inter_w * inter_h
    union = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
             - inter)
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def search_iou_threshold(gt_boxes: np.ndarray) -> np.ndarray:
    """The search protocols' IoU threshold for a ground-truth box: min(0.5, wh / ((w+10)(h+10))).

    Small people get a looser threshold, so a detection a few pixels off still matches them.

    Args:
        gt_boxes: (P, 4) int32 pixel x1, y1, x2, y2 (after the protocol's GT convention).

    Returns:
        (P,) float64 thresholds.
    """
    boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return np.minimum(MAX_SEARCH_IOU_THRESHOLD,
                      width * height / ((width + SMALL_BOX_MARGIN) * (height + SMALL_BOX_MARGIN)))
