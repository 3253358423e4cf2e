"""RetinaNet anchor targets for one image: which anchors are people, background or ignored, and
the box regression targets of the people.

Rules (Lin et al., "Focal Loss for Dense Object Detection"; docs/architecture.md#detection-branch):
- an anchor whose best IoU with a person is >= `positive_iou` (0.5) is positive for that person;
- below `negative_iou` (0.4) it is background; in between it is ignored (no classification loss);
- every person keeps its best anchor (even below 0.5), so that small or oddly shaped people still
  get a positive; ties in an anchor's best person go to the first person;
- ignore regions (crowds, MOT classes 2/7/8/12, WIDER ignore boxes) are not people: an anchor that
  is not positive and lies mostly inside one (intersection over the anchor's area >=
  `ignore_ioa`, 0.5) gives no classification loss.

Runs inside tf.data (per image, unbatched), so it is written with plain TF ops and handles an image
without people (all anchors background).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from ps_tf.ops.anchors import BoxCoder


def pairwise_iou(boxes_a: tf.Tensor, boxes_b: tf.Tensor) -> tf.Tensor:
    """IoU of every pair: (N, 4) x (M, 4) pixel yxyx -> (N, M)."""
    intersection = _pairwise_intersection(boxes_a, boxes_b)
    area_a = _area(boxes_a)[:, None]
    area_b = _area(boxes_b)[None, :]
    union = area_a + area_b - intersection
    return tf.math.divide_no_nan(intersection, union)


def pairwise_ioa(boxes_a: tf.Tensor, boxes_b: tf.Tensor) -> tf.Tensor:
    """Intersection over the area of `boxes_a`: (N, 4) x (M, 4) pixel yxyx -> (N, M)."""
    return tf.math.divide_no_nan(_pairwise_intersection(boxes_a, boxes_b),
                                 _area(boxes_a)[:, None])


def _area(boxes: tf.Tensor) -> tf.Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _pairwise_intersection(boxes_a: tf.Tensor, boxes_b: tf.Tensor) -> tf.Tensor:
    ymin = tf.maximum(boxes_a[:, None, 0], boxes_b[None, :, 0])
    xmin = tf.maximum(boxes_a[:, None, 1], boxes_b[None, :, 1])
    ymax = tf.minimum(boxes_a[:, None, 2], boxes_b[None, :, 2])
    xmax = tf.minimum(boxes_a[:, None, 3], boxes_b[None, :, 3])
    return tf.maximum(ymax - ymin, 0.0) * tf.maximum(xmax - xmin, 0.0)


@dataclasses.dataclass(frozen=True)
class AnchorLabeler:
    """Computes per-anchor targets. See the module docstring for the rules."""
    box_coder: BoxCoder = BoxCoder()
    positive_iou: float = 0.5
    negative_iou: float = 0.4
    ignore_ioa: float = 0.5

    def __call__(self, anchors: tf.Tensor, gt_boxes: tf.Tensor,
                 gt_ignore: tf.Tensor) -> dict[str, tf.Tensor]:
        """Targets of one image.

        Args:
            anchors: (N, 4) float32 pixel yxyx.
            gt_boxes: (M, 4) float32 pixel yxyx in the same (resized, padded) frame; M may be 0.
            gt_ignore: (M,) bool, True for ignore regions.

        Returns:
            `class_targets` (N,) float32, 1 for person anchors, else 0;
            `class_weights` (N,) float32, 0 where the classification loss is ignored, else 1;
            `box_targets` (N, 4) float32 encoded boxes (zeros where not positive);
            `box_weights` (N,) float32, 1 for positive anchors;
            `num_positives` () float32.
        """
        anchors = tf.convert_to_tensor(anchors, tf.float32)
        gt_boxes = tf.reshape(tf.cast(gt_boxes, tf.float32), [-1, 4])
        gt_ignore = tf.reshape(tf.cast(gt_ignore, tf.bool), [-1])
        people = tf.boolean_mask(gt_boxes, ~gt_ignore)
        regions = tf.boolean_mask(gt_boxes, gt_ignore)
        num_anchors = tf.shape(anchors)[0]
        num_people = tf.shape(people)[0]

        # A zero box that overlaps nothing stands in for "no person", so that max/argmax below
        # are defined for images without people.
        padded = tf.concat([people, tf.zeros([1, 4])], axis=0)
        iou = pairwise_iou(anchors, padded)                           # (N, M + 1)
        best_iou = tf.reduce_max(iou, axis=1)
        matched = tf.argmax(iou, axis=1, output_type=tf.int32)
        positive = best_iou >= self.positive_iou
        negative = best_iou < self.negative_iou

        # Every person keeps its best anchor (a person with IoU 0 everywhere is outside the image
        # and gets none).
        person_iou = iou[:, :-1]
        best_anchor = tf.argmax(person_iou, axis=0, output_type=tf.int32)          # (M,)
        has_overlap = tf.reduce_max(person_iou, axis=0) > 0.0
        forced_anchor = tf.boolean_mask(best_anchor, has_overlap)
        forced_person = tf.boolean_mask(tf.range(num_people), has_overlap)
        forced = tf.scatter_nd(forced_anchor[:, None], tf.ones_like(forced_anchor, tf.bool),
                               [num_anchors])
        matched = tf.tensor_scatter_nd_update(matched, forced_anchor[:, None], forced_person)
        positive = positive | forced
        negative = negative & ~positive

        in_region = tf.reduce_max(
            tf.concat([pairwise_ioa(anchors, regions), tf.zeros([num_anchors, 1])], axis=1),
            axis=1) >= self.ignore_ioa
        class_weights = tf.cast(positive | (negative & ~in_region), tf.float32)
        positive_f = tf.cast(positive, tf.float32)
        box_targets = self.box_coder.encode(tf.gather(padded, matched), anchors)
        box_targets = box_targets * positive_f[:, None]
        return {
            'class_targets': positive_f,
            'class_weights': class_weights,
            'box_targets': box_targets,
            'box_weights': positive_f,
            'num_positives': tf.reduce_sum(positive_f),
        }
