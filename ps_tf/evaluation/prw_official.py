"""Zheng et al.'s original PRW protocol (the MATLAB `baseline_dpm_bow*.m` and `compute_AP.m` of
the PRW release), as an option beside the SeqNet protocol of `prw.py`
(docs/evaluation.md#prw-three-readings). Person-search tables since OIM report SeqNet's protocol;
this one is stricter (cross-camera only) and counts people the detector missed.

What is implemented, for the kept gallery detections (`search.GalleryDetections`: after
`det_thresh` and `max_detections_per_image`) and each query (identity p, camera c):

1. Each kept detection is labelled once, whatever the query, by its best-IoU ground-truth box in
   its frame (highest plain IoU, the first box on equal IoU; ignore regions are no candidates;
   boxes under the protocol's box convention; no small-box rule):
   IoU >= 0.5: the box's identity, or junk when the box has none (PRW's -2);
   0.3 <= IoU < 0.5: junk; IoU < 0.3 or a frame without boxes: background.
   Several detections can take the same box (no one-to-one matching); each of them counts.
2. Good: detections of identity p in frames of a camera other than c. Junk (removed from the
   ranking: neither right nor wrong): detections of p in camera c (the query's own frame
   included), IoU-junk and unidentified detections. Background and other identities are wrong.
   The gallery is every gallery frame; none is removed, not even the query's.
3. Missed: the ground-truth boxes of p in other cameras than c that no detection took (as its
   best box with IoU >= 0.5). num_good = good detections + missed boxes: missed people are
   never retrieved, so they lower recall (the MATLAB appends them to the good list).
4. Ranking: all kept detections by similarity (the float32-rounded float64 dot product of
   `search.py`), descending; exact ties keep gallery order (frames in protocol order, file order
   inside), as MATLAB's stable `sort(..., 'descend')` does. Junk is dropped before positions are
   counted.
5. AP: `compute_AP.m`'s trapezoid rule (`average_precision.trapezoid_average_precision`); CMC:
   top-k is 1 when the first good detection is within the first k positions. A query with
   num_good = 0 (its identity never seen by another camera) gets AP 0 and top-k 0, with a warning
   (the MATLAB divides by zero there).

Not reproduced: the MATLAB's sweep over 30 detection thresholds (`evaluate.py --det_thresh`, or
the `--max_detections_per_image` sweep, choose the operating point here).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from absl import logging

from ps_tf.evaluation import average_precision as ap_lib
from ps_tf.evaluation import boxes as boxes_lib
from ps_tf.evaluation import protocol as protocol_lib
from ps_tf.evaluation import search
from ps_tf.evaluation import segments

STYLE = 'prw_official'
MATCH_IOU = 0.5
JUNK_IOU = 0.3
BACKGROUND = -3      # label of a detection on nobody (IoU < 0.3)
JUNK = -4            # label of an IoU-junk or unidentified detection
CHUNK_ELEMENTS = 1 << 22


@dataclasses.dataclass(frozen=True)
class DetectionLabels:
    """The query-independent labels of the kept detections (step 1 of the module docstring).

    Attributes:
        person_id: (M,) int64 identity taken, or `BACKGROUND` / `JUNK`.
        camera: (M,) int64 camera of the detection's frame.
        taken_box: (M,) int64 gallery box taken with IoU >= 0.5 (identified or not), -1 if none.
    """
    person_id: np.ndarray
    camera: np.ndarray
    taken_box: np.ndarray


def label_detections(protocol: protocol_lib.Protocol,
                     detections: search.GalleryDetections) -> DetectionLabels:
    """Labels each kept detection by its best-IoU ground-truth box (module docstring, step 1)."""
    gallery = protocol.gallery
    gt_boxes = protocol.gallery_gt_boxes()
    num_dets = len(detections.boxes)
    det_image = np.repeat(np.arange(len(detections.counts)), detections.counts)
    boxes_per_image = np.diff(gallery.box_offsets)
    pair_det, pair_box = segments.expand_ranges(gallery.box_offsets[det_image],
                                                boxes_per_image[det_image])
    candidate = ~gallery.ignore[pair_box]
    pair_det, pair_box = pair_det[candidate], pair_box[candidate]
    iou = boxes_lib.paired_iou(detections.boxes[pair_det], gt_boxes[pair_box])
    best = segments.first_argmax(iou, pair_det, num_dets)
    has_pair = best >= 0
    best_iou = np.zeros(num_dets)
    best_iou[has_pair] = iou[best[has_pair]]
    best_box = np.where(has_pair, pair_box[np.maximum(best, 0)] if len(pair_box) else -1, -1)

    taken = best_iou >= MATCH_IOU
    person_id = np.full(num_dets, BACKGROUND, np.int64)
    person_id[taken] = gallery.person_ids[best_box[taken]]
    person_id[taken & (person_id == protocol_lib.NO_IDENTITY)] = JUNK
    person_id[(best_iou >= JUNK_IOU) & ~taken] = JUNK
    return DetectionLabels(person_id=person_id, camera=gallery.cameras[det_image],
                           taken_box=np.where(taken, best_box, -1).astype(np.int64))


def evaluate(protocol: protocol_lib.Protocol, detections: search.GalleryDetections,
             query_embeddings: np.ndarray) -> search.SearchResult:
    """Scores the kept detections under Zheng et al.'s PRW protocol (module docstring).

    Args:
        protocol: the dataset's protocol (gallery lists, if any, are not used).
        detections: the kept gallery detections.
        query_embeddings: (Q, D) float32 L2-normalised, in protocol query order.

    Returns:
        Per-query AP (trapezoid rule) and top-k; `count_tp` = good detections ranked,
        `count_gt` = num_good (good detections + missed boxes).
    """
    queries = protocol.queries
    num_queries, num_dets = len(queries), len(detections.boxes)
    if len(query_embeddings) != num_queries or len(detections.offsets) != len(
            protocol.gallery.names) + 1:
        raise ValueError(f'{num_queries} queries x {len(protocol.gallery.names)} gallery frames, '
                         f'got {len(query_embeddings)} query embeddings and detections for '
                         f'{len(detections.offsets) - 1} frames')
    labels = label_detections(protocol, detections)
    missed = _missed_boxes(protocol, labels)

    average_precision = np.zeros(num_queries)
    top_k = np.zeros((num_queries, len(search.TOP_K)))
    count_tp = np.zeros(num_queries, np.int64)
    count_gt = np.zeros(num_queries, np.int64)
    embeddings = np.asarray(detections.embeddings, np.float64)
    rows_per_chunk = max(1, CHUNK_ELEMENTS // max(1, num_dets))
    for start in range(0, num_queries, rows_per_chunk):
        rows = np.arange(start, min(num_queries, start + rows_per_chunk))
        scores = (np.asarray(query_embeddings, np.float64)[rows] @ embeddings.T).astype(np.float32)
        same_id = labels.person_id[None, :] == queries.person_ids[rows, None]
        same_camera = labels.camera[None, :] == queries.cameras[rows, None]
        good = same_id & ~same_camera
        junk = (same_id & same_camera) | (labels.person_id == JUNK)[None, :]
        order = np.argsort(-scores, axis=1, kind='stable')
        good_sorted = np.take_along_axis(good, order, axis=1)
        kept_sorted = ~np.take_along_axis(junk, order, axis=1)
        position = np.cumsum(kept_sorted, axis=1)      # 1-based, among non-junk items
        for local, query in enumerate(rows.tolist()):
            good_position = position[local][good_sorted[local]]
            num_good = len(good_position) + int(missed[query])
            count_tp[query], count_gt[query] = len(good_position), num_good
            average_precision[query] = ap_lib.trapezoid_average_precision(good_position,
                                                                          num_good)
            if len(good_position):
                top_k[query] = good_position.min() <= np.asarray(search.TOP_K)
    no_good = int(np.sum(count_gt == 0))
    if no_good:
        logging.warning('%d of %d queries have no good match in another camera; their AP is 0',
                        no_good, num_queries)
    return search.SearchResult(average_precision=average_precision, top_k=top_k,
                               count_tp=count_tp, count_gt=count_gt)


def _missed_boxes(protocol: protocol_lib.Protocol, labels: DetectionLabels) -> np.ndarray:
    """(Q,) int64 ground-truth boxes of each query's identity, in other cameras, that no kept
    detection took."""
    gallery, queries = protocol.gallery, protocol.queries
    taken = np.zeros(len(gallery.person_ids), bool)
    taken[labels.taken_box[labels.taken_box >= 0]] = True
    box_camera = gallery.cameras[gallery.box_image]
    candidate = ~gallery.ignore & (gallery.person_ids != protocol_lib.NO_IDENTITY) & ~taken
    missed = np.zeros(len(queries), np.int64)
    for query in range(len(queries)):
        missed[query] = np.count_nonzero(candidate
                                         & (gallery.person_ids == queries.person_ids[query])
                                         & (box_camera != queries.cameras[query]))
    return missed
