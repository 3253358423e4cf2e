"""The joint person-search model: detector + re-ID branch on one shared trunk, one graph.

design.md §2, "Joint inference": image -> shared trunk -> detection -> NMS -> ROI align on the
shared map -> re-ID branch -> embeddings. Query boxes take the same ROI path (`embed_boxes`). The
ROI input is wrapped in `tf.stop_gradient`, so no re-ID gradient reaches the shared trunk even if
the joint model is ever trained end to end.

Both entry points are `tf.function`s; they retrace per input batch shape (the detector needs a
static square image size).
"""

from __future__ import annotations

import tensorflow as tf

from ps_tf.models.reid import ReidBranch, roi_align, roi_size
from ps_tf.models.retinanet import RetinaNetDetector


class JointModel(tf.Module):
    """Detection boxes, scores and re-ID embeddings of padded square images.

    Args:
        detector: the trained stage-1 detector (its trunk is the shared trunk).
        reid_branch: the trained re-ID branch of the same variant.

    Raises:
        ValueError: the two parts are of different variants.
    """

    def __init__(self, detector: RetinaNetDetector, reid_branch: ReidBranch,
                 name: str | None = None):
        super().__init__(name=name)
        if detector.variant != reid_branch.variant:
            raise ValueError(f'detector variant {detector.variant} differs from the re-ID '
                             f'branch\'s {reid_branch.variant}')
        self.detector = detector
        self.reid_branch = reid_branch
        self.variant = detector.variant
        self.crop_size = roi_size(self.variant)
        self.embedding_dim = reid_branch.embedding_dim
        self._shared_name = f'C{detector.shared_level}'

    def _embed_rois(self, shared_features: tf.Tensor, boxes_yxyx: tf.Tensor,
                    box_image_index: tf.Tensor, image_size: int) -> tf.Tensor:
        pooled = roi_align(tf.stop_gradient(shared_features), boxes_yxyx, box_image_index,
                           image_size, self.crop_size)
        return self.reid_branch.embed(pooled)

    @tf.function(reduce_retracing=True)
    def detect_and_embed(self, images: tf.Tensor, valid_sizes: tf.Tensor | None = None
                         ) -> dict[str, tf.Tensor]:
        """Detects people and embeds every detection.

        Args:
            images: (B, S, S, 3) float32 in [0, 255], padded squares (`resize_and_pad`).
            valid_sizes: optional (B, 2) height, width of each image inside its padded square
                (row 1 of `image_info`); detections are clipped to it.

        Returns:
            `detection_boxes` (B, D, 4) pixel ymin, xmin, ymax, xmax in the padded square input;
            `detection_scores` (B, D); `num_detections` (B,) int32; `detection_embeddings`
            (B, D, E) float32, L2-normalised, zeros in the padded slots (d >= num_detections).
        """
        image_size = int(images.shape[1])
        detections = self.detector.detect(images, valid_sizes)
        boxes = detections['detection_boxes']
        batch, slots = tf.shape(boxes)[0], tf.shape(boxes)[1]
        num_detections = tf.cast(detections['num_detections'], tf.int32)
        valid = tf.sequence_mask(num_detections, slots)                           # (B, D)
        image_index = tf.broadcast_to(tf.range(batch)[:, None], [batch, slots])
        # Only the real detections go through the re-ID branch (M = sum of num_detections).
        embeddings = self._embed_rois(detections['shared_features'],
                                      tf.boolean_mask(boxes, valid),
                                      tf.boolean_mask(image_index, valid), image_size)
        embeddings = tf.scatter_nd(tf.cast(tf.where(valid), tf.int32), embeddings,
                                   tf.stack([batch, slots, self.embedding_dim]))
        return {'detection_boxes': boxes, 'detection_scores': detections['detection_scores'],
                'num_detections': num_detections, 'detection_embeddings': embeddings}

    @tf.function(reduce_retracing=True)
    def embed_boxes(self, images: tf.Tensor, boxes_yxyx: tf.Tensor,
                    box_image_index: tf.Tensor) -> tf.Tensor:
        """Embeds given boxes (queries, ground truth) through the same ROI path.

        Args:
            images: (B, S, S, 3) float32 in [0, 255], padded squares.
            boxes_yxyx: (M, 4) pixel ymin, xmin, ymax, xmax in the padded square input.
            box_image_index: (M,) int32, the image of each box.

        Returns:
            (M, E) float32 L2-normalised embeddings.
        """
        shared = self.detector.trunk(images, training=False)[self._shared_name]
        return self._embed_rois(shared, boxes_yxyx, box_image_index, int(images.shape[1]))
