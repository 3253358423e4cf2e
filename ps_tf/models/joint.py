"""The joint person-search model: detector + re-ID branch on one shared trunk, one graph.

docs/architecture.md#joint-inference: image -> shared trunk -> detection -> NMS -> ROI align on the
shared map -> re-ID branch -> embeddings. Query boxes take the same ROI path (`embed_boxes`). The
ROI input is wrapped in `tf.stop_gradient`, so no re-ID gradient reaches the shared trunk through
these entry points, as in the paper's two-step training. The one exception is the optional joint
fine-tuning (`ps_tf.training.joint_finetune`), which pools with `pool_regions(...,
stop_gradient=False)` so that the re-ID loss trains the shared layers too.

`PersonSearchModel` holds what every person-search model does with its detections (embed the
real ones, zeros in the padded slots) and the two entry points; a subclass only says which map the
boxes are cropped from (`region_source`) and how a batch of boxes is embedded (`embed_regions`).
`JointModel` crops the shared trunk map; the disjoint baseline (`ps_tf.models.disjoint`) crops the
input image. All boxes of a batch go through one `crop_and_resize` (ROI pooling batched across
images) and one forward pass of the embedding network.

Both entry points are `tf.function`s; they retrace per input batch shape (the detector needs a
static square image size).
"""

from __future__ import annotations

import tensorflow as tf

from ps_tf.models.reid import ReidBranch, roi_size
from ps_tf.models.retinanet import RetinaNetDetector
from ps_tf.ops.geometry import roi_align


class PersonSearchModel(tf.Module):
    """A detector followed by an embedding of every detected box (base class).

    Subclasses set `detector`, `embedding_dim` and `variant` and implement `region_source` and
    `embed_regions`.
    """

    detector: RetinaNetDetector
    embedding_dim: int
    variant: str

    def region_source(self, images: tf.Tensor, detections: dict[str, tf.Tensor] | None = None
                      ) -> tf.Tensor:
        """The map person boxes are cropped from.

        Args:
            images: (B, S, S, 3) float32 in [0, 255], padded squares.
            detections: `detector.detect(images)` when already computed (its `shared_features`
                spare a second trunk pass), else None.
        """
        raise NotImplementedError

    def embed_regions(self, source: tf.Tensor, boxes_yxyx: tf.Tensor,
                      box_image_index: tf.Tensor, image_size: int) -> tf.Tensor:
        """(M, 4) pixel ymin, xmin, ymax, xmax boxes in the padded square input of side
        `image_size`, (M,) int32 image index -> (M, E) float32 L2-normalised embeddings (M may
        be 0), cropped from `source` (`region_source`)."""
        raise NotImplementedError

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
        # Only the real detections go through the re-ID network (M = sum of num_detections).
        embeddings = self.embed_regions(self.region_source(images, detections),
                                        tf.boolean_mask(boxes, valid),
                                        tf.boolean_mask(image_index, valid), image_size)
        embeddings = tf.scatter_nd(tf.cast(tf.where(valid), tf.int32), embeddings,
                                   tf.stack([batch, slots, self.embedding_dim]))
        return {'detection_boxes': boxes, 'detection_scores': detections['detection_scores'],
                'num_detections': num_detections, 'detection_embeddings': embeddings}

    @tf.function(reduce_retracing=True)
    def embed_boxes(self, images: tf.Tensor, boxes_yxyx: tf.Tensor,
                    box_image_index: tf.Tensor) -> tf.Tensor:
        """Embeds given boxes (queries, ground truth) through the same path as detections.

        Args:
            images: (B, S, S, 3) float32 in [0, 255], padded squares.
            boxes_yxyx: (M, 4) pixel ymin, xmin, ymax, xmax in the padded square input.
            box_image_index: (M,) int32, the image of each box.

        Returns:
            (M, E) float32 L2-normalised embeddings.
        """
        return self.embed_regions(self.region_source(images), boxes_yxyx, box_image_index,
                                  int(images.shape[1]))


class JointModel(PersonSearchModel):
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

    def region_source(self, images: tf.Tensor, detections: dict[str, tf.Tensor] | None = None
                      ) -> tf.Tensor:
        """The shared trunk map (B, S/stride, S/stride, C) (from `detections` if given)."""
        if detections is not None:
            return detections['shared_features']
        return self.detector.trunk(images, training=False)[self._shared_name]

    def pool_regions(self, source: tf.Tensor, boxes_yxyx: tf.Tensor, box_image_index: tf.Tensor,
                     image_size: int, stop_gradient: bool = True) -> tf.Tensor:
        """ROI align of boxes on the shared map: (M, h, w, c) float32, the re-ID branch's input.

        `stop_gradient` (the default, and the only setting of inference and the two-step
        training) blocks every gradient from the pooled features to the shared trunk; the joint
        fine-tuning passes False, so that the re-ID loss reaches the shared layers.
        """
        if stop_gradient:
            source = tf.stop_gradient(source)
        return roi_align(source, boxes_yxyx, box_image_index, image_size, self.crop_size)

    def embed_regions(self, source: tf.Tensor, boxes_yxyx: tf.Tensor,
                      box_image_index: tf.Tensor, image_size: int) -> tf.Tensor:
        """ROI align on the shared map (no gradient to it), then the re-ID branch (see
        `PersonSearchModel`)."""
        return self.reid_branch.embed(self.pool_regions(source, boxes_yxyx, box_image_index,
                                                        image_size))
