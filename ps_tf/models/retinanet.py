"""The RetinaNet person detector on a shared ResNet-50 trunk.

Handed its parts (the Model Garden's way): the shared `trunk` (images -> C2..Ck), the `rest` of
ResNet-50 (Ck -> C(k+1)..C5), the feature pyramid and the head. The re-ID branch receives the same
trunk object, so the shared stages exist once and are computed once per image.
"""

from __future__ import annotations

import tensorflow as tf

from ps_tf.models.backbone import shared_level, split_resnet50
from ps_tf.models.fpn import FeaturePyramid
from ps_tf.models.heads import RetinaNetHead
from ps_tf.models.postprocess import DetectionGenerator
from ps_tf.ops.anchors import AnchorConfig


class RetinaNetDetector(tf.keras.Model):
    """images (B, S, S, 3) float32 in [0, 255] -> raw outputs for the loss, or detections.

    `call` returns the training outputs: `class_logits` (B, N), `box_outputs` (B, N, 4) and
    `shared_features` (the trunk's last map, for the re-ID branch). `detect` adds decoding and NMS
    (see `DetectionGenerator`).
    """

    def __init__(self, variant: str, trunk: tf.keras.Model, rest: tf.keras.Model,
                 fpn: tf.keras.layers.Layer, head: tf.keras.layers.Layer,
                 detection_generator: DetectionGenerator, layout: str = 'keras', **kwargs):
        super().__init__(**kwargs)
        self.variant = variant
        self.layout = layout   # of the ResNet-50 and the pyramid (`backbone.LAYOUTS`)
        self.shared_level = shared_level(variant)
        self.trunk = trunk
        self.rest = rest
        self.fpn = fpn
        self.head = head
        self.detection_generator = detection_generator

    def call(self, images: tf.Tensor, training: bool | None = None,
             trunk_gradient: bool = True) -> dict[str, tf.Tensor]:
        """`trunk_gradient=False`: the detection outputs are computed from the trunk's maps
        through `tf.stop_gradient`, so a loss on them trains the detector's own layers only;
        `shared_features` is returned without it (joint fine-tuning's
        `detection_trains_trunk=False`: the re-ID loss alone trains the shared trunk)."""
        shared = self.trunk(images, training=training)
        shared_features = shared[f'C{self.shared_level}']
        if not trunk_gradient:
            shared = {name: tf.stop_gradient(value) for name, value in shared.items()}
        own = self.rest(shared[f'C{self.shared_level}'], training=training)
        stages = {**shared, **own}
        pyramid = self.fpn({k: stages[k] for k in ('C3', 'C4', 'C5')}, training=training)
        class_logits, box_outputs = self.head(pyramid, training=training)
        return {'class_logits': class_logits, 'box_outputs': box_outputs,
                'shared_features': shared_features}

    def detect(self, images: tf.Tensor, valid_sizes: tf.Tensor | None = None
               ) -> dict[str, tf.Tensor]:
        """Inference on a square batch: `detection_boxes` (B, D, 4) pixel yxyx in the input
        frame, `detection_scores` (B, D), `num_detections` (B,), plus `shared_features`.

        `valid_sizes` (B, 2): height, width of each image inside the padded input (the resized
        size of `resize_and_pad`'s `image_info`); boxes are clipped to it.
        """
        if images.shape[1] is None or images.shape[1] != images.shape[2]:
            raise ValueError(f'detect() needs square images of a static size, got {images.shape}')
        outputs = self(images, training=False)
        detections = self.detection_generator(outputs['class_logits'], outputs['box_outputs'],
                                              int(images.shape[1]), valid_sizes)
        return {**detections, 'shared_features': outputs['shared_features']}


def build_detector(variant: str = 'J3', weights: str = 'none', freeze_batch_norm: bool = False,
                   head_batch_norm: bool = False, anchor_config: AnchorConfig = AnchorConfig(),
                   detection_generator: DetectionGenerator | None = None,
                   layout: str = 'keras') -> RetinaNetDetector:
    """The detector of a variant, built from plain arguments (the one place config becomes
    objects).

    Args:
        variant: 'J2', 'J3' or 'J4' (which ResNet stages the trunk shares).
        weights: backbone weights: 'none', 'imagenet' or a Keras weights file of ResNet-50
            ('none' only with the garden layout).
        freeze_batch_norm: fixed ResNet batch norm (for fine-tuning pretrained weights).
        head_batch_norm: batch norm in the class and box subnets (for training from scratch).
        anchor_config: the anchors the head predicts for.
        detection_generator: post-processing settings (defaults:
            docs/architecture.md#detection-branch).
        layout: 'keras' (tf.keras.applications' ResNet-50, Lin et al.'s pyramid) or 'garden'
            (the TF Model Garden's ResNet-50 and pyramid, whose COCO RetinaNet checkpoints load
            into it: `ps_tf.models.coco_init`).
    """
    trunk, rest = split_resnet50(variant, weights, freeze_batch_norm, layout)
    head = RetinaNetHead(anchor_config.anchors_per_location, use_batch_norm=head_batch_norm,
                         min_level=anchor_config.min_level, max_level=anchor_config.max_level,
                         name='head')
    return RetinaNetDetector(
        variant, trunk, rest, FeaturePyramid(garden=layout == 'garden', name='fpn'), head,
        detection_generator or DetectionGenerator(anchor_config=anchor_config), layout=layout,
        name=f'retinanet_{variant}')
