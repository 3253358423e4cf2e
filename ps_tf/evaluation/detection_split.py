"""Runs a detector over a split and scores it with the protocol's detection AP.

Stage 1's periodic validation and `experiments/detector_ap.py` use it: every image of the split
once, detections mapped back to original pixels, then `ps_tf.evaluation.detection`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from ps_tf.evaluation import detection as detection_eval
from ps_tf.evaluation import protocol as protocol_lib
from ps_tf.ops.geometry import boxes_to_original


@dataclasses.dataclass
class SplitDetections:
    """Detections and ground truth of one split, in the order the dataset yielded the images.

    Attributes:
        gallery: the ground truth as the evaluation's `GalleryAnnotations`.
        det_image, det_boxes, det_scores: (M,) image index, (M, 4) pixel x1, y1, x2, y2 in the
            original images, (M,) scores.
        samples: a few (image uint8 (H, W, 3) in the model frame, boxes yxyx, scores) for
            TensorBoard pictures.
    """
    gallery: protocol_lib.GalleryAnnotations
    det_image: np.ndarray
    det_boxes: np.ndarray
    det_scores: np.ndarray
    samples: list


def detect_split(detect_fn, dataset: tf.data.Dataset, max_images: int = 0,
                 num_samples: int = 4) -> SplitDetections:
    """Detections of every image of an evaluation dataset (`detection_eval_dataset`).

    Args:
        detect_fn: (images (B, S, S, 3), valid sizes (B, 2)) -> the detector's `detect` outputs.
        dataset: batches of (images, labels) from `ps_tf.data.datasets.detection_eval_dataset`.
        max_images: stop after this many images (0 = all).
        num_samples: images kept for pictures.
    """
    names, box_counts, boxes, person_ids, ignore = [], [], [], [], []
    det_image, det_boxes, det_scores, samples = [], [], [], []
    for images, labels in dataset:
        outputs = detect_fn(images, labels['image_info'][:, 1])   # resized (valid) size
        original = boxes_to_original(outputs['detection_boxes'], labels['image_info']).numpy()
        scores = outputs['detection_scores'].numpy()
        counts = outputs['num_detections'].numpy()
        for b in range(images.shape[0]):
            index = len(names)
            k = int(labels['num_objects'][b])
            names.append(labels['filename'][b].numpy().decode())
            box_counts.append(k)
            boxes.append(labels['gt_boxes'][b, :k].numpy())
            person_ids.append(labels['gt_person_id'][b, :k].numpy())
            ignore.append(labels['gt_ignore'][b, :k].numpy())
            n = int(counts[b])
            det_image.append(np.full(n, index))
            det_boxes.append(original[b, :n])
            det_scores.append(scores[b, :n])
            if len(samples) < num_samples:
                samples.append((images[b].numpy().clip(0, 255).astype(np.uint8),
                                outputs['detection_boxes'][b, :n].numpy(), scores[b, :n]))
            if max_images and len(names) >= max_images:
                break
        if max_images and len(names) >= max_images:
            break
    gallery = protocol_lib.GalleryAnnotations(
        names=np.asarray(names), cameras=np.full(len(names), -1, np.int64),
        box_offsets=np.concatenate([[0], np.cumsum(box_counts)]).astype(np.int64),
        boxes=np.concatenate(boxes or [np.zeros((0, 4))]).astype(np.float64).reshape(-1, 4),
        person_ids=np.concatenate(person_ids or [np.zeros(0)]).astype(np.int64),
        ignore=np.concatenate(ignore or [np.zeros(0)]).astype(bool))
    return SplitDetections(
        gallery=gallery,
        det_image=np.concatenate(det_image or [np.zeros(0)]).astype(np.int64),
        det_boxes=np.concatenate(det_boxes or [np.zeros((0, 4))]).astype(np.float32),
        det_scores=np.concatenate(det_scores or [np.zeros(0)]).astype(np.float32),
        samples=samples)


def detection_metrics(detections: SplitDetections, det_thresh: float = 0.01
                      ) -> detection_eval.DetectionResult:
    """Detection AP and recall (SeqNet semantics, IoU 0.5) of `detect_split`'s output."""
    gt_boxes = protocol_lib.gt_boxes_int32(detections.gallery.boxes, protocol_lib.TRUNCATE)
    return detection_eval.evaluate_detection(
        detections.gallery, gt_boxes, detections.det_image, detections.det_boxes,
        detections.det_scores, det_thresh=det_thresh)
