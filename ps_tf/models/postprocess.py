"""RetinaNet inference: per-anchor outputs to at most `max_detections` people per image.

Sigmoid scores, the `pre_nms_top_k` best anchors per image, box decoding, clipping to the input,
then non-maximum suppression (IoU `nms_iou`) and the score threshold. All boxes are pixel ymin,
xmin, ymax, xmax in the padded square model input (see `ps_tf.data` for the way back to the
original image).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from ps_tf.ops.anchors import AnchorConfig, BoxCoder, generate_anchors


MIN_INSIDE = 0.5   # a box with less of its area inside the image is dropped


def _area(boxes: tf.Tensor) -> tf.Tensor:
    return tf.maximum(boxes[..., 2] - boxes[..., 0], 0.0) * tf.maximum(
        boxes[..., 3] - boxes[..., 1], 0.0)


@dataclasses.dataclass(frozen=True)
class DetectionGenerator:
    """Decodes and filters detections. Defaults are RetinaNet's
    (docs/architecture.md#detection-branch)."""
    anchor_config: AnchorConfig = AnchorConfig()
    box_coder: BoxCoder = BoxCoder()
    pre_nms_top_k: int = 1000
    nms_iou: float = 0.5
    max_detections: int = 100
    score_threshold: float = 0.05

    def __call__(self, class_logits: tf.Tensor, box_outputs: tf.Tensor, image_size: int,
                 valid_sizes: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        """Detections of a batch.

        Args:
            class_logits: (B, N) person logits.
            box_outputs: (B, N, 4) box codes.
            image_size: side of the square model input (pixels); fixes the anchors.
            valid_sizes: (B, 2) height, width of the image inside the padded input (pixels), or
                None for unpadded inputs. Boxes are clipped to it, and a box with less than
                `MIN_INSIDE` of its area inside (one that lies mostly in the padding) is dropped:
                the image border looks like the bottom of a person to the detector.

        Returns:
            `detection_boxes` (B, D, 4) float32 pixel yxyx, `detection_scores` (B, D) float32,
            `num_detections` (B,) int32 (D = max_detections; entries past num_detections are 0).
        """
        anchors = tf.constant(generate_anchors(self.anchor_config, image_size))
        num_anchors = anchors.shape[0]
        if class_logits.shape[1] is not None and class_logits.shape[1] != num_anchors:
            raise ValueError(f'{class_logits.shape[1]} anchor outputs, but an input of '
                             f'{image_size} px has {num_anchors} anchors')
        scores = tf.sigmoid(tf.cast(class_logits, tf.float32))
        k = min(self.pre_nms_top_k, num_anchors)
        top_scores, top_index = tf.math.top_k(scores, k=k, sorted=False)        # (B, k)
        top_codes = tf.gather(tf.cast(box_outputs, tf.float32), top_index, batch_dims=1)
        top_boxes = self.box_coder.decode(top_codes, tf.gather(anchors, top_index))
        if valid_sizes is None:
            valid_sizes = tf.fill([tf.shape(top_boxes)[0], 2], float(image_size))
        limits = tf.tile(tf.cast(valid_sizes, tf.float32), [1, 2])[:, None, :]   # (B, 1, 4)
        clipped = tf.clip_by_value(top_boxes, 0.0, limits)
        inside = _area(clipped) >= MIN_INSIDE * _area(top_boxes)
        top_boxes, top_scores = clipped, tf.where(inside, top_scores, 0.0)
        boxes, nms_scores, _, valid = tf.image.combined_non_max_suppression(
            top_boxes[:, :, None, :], top_scores[:, :, None],
            max_output_size_per_class=self.max_detections, max_total_size=self.max_detections,
            iou_threshold=self.nms_iou, score_threshold=self.score_threshold, clip_boxes=False)
        return {'detection_boxes': boxes, 'detection_scores': nms_scores,
                'num_detections': tf.cast(valid, tf.int32)}
