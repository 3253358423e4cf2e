"""The re-ID branch: ROI align on the shared feature map, then replicated ResNet stages.

docs/architecture.md#re-id-branch. Each person box is ROI-aligned (`tf.image.crop_and_resize`,
bilinear) on the shared trunk's last map to the size a 256 x 128 snippet has at that map's stride:
J2 (C2, stride 4) 64 x 32, J3 (C3, stride 8) 32 x 16, J4 (C4, stride 16) 16 x 8. The pooled
features go through copies of the ResNet stages the trunk does not share (J2: C3*-C5*, J3:
C4*-C5*, J4: C5*), global average pooling and a linear embedding layer (128-d by default).
`ReidBranch.call` returns the raw embeddings (stage 2 decides whether its losses normalise them);
`ReidBranch.embed`, the inference path, L2-normalises them.

The replicated stages are a fresh `split_resnet50(variant)`'s `rest`, i.e. exactly the layer
structure of the detector's own `rest`, so their weights are copied one to one from the trained
detector (`copy_detector_stages`).

ROI coordinates. Boxes are pixel ymin, xmin, ymax, xmax in the padded square model input of side
`image_size`; `crop_and_resize` receives them normalised by `image_size` (the shared map covers the
whole padded square), as docs/architecture.md#re-id-branch describes.
"""

from __future__ import annotations

import tensorflow as tf

from ps_tf.models.backbone import STAGE_CHANNELS, shared_level, split_resnet50

SNIPPET_SIZE = (256, 128)   # (height, width) of a person snippet the ROI size corresponds to


def roi_size(variant: str) -> tuple[int, int]:
    """(height, width) of a pooled box for `variant`: 256 x 128 divided by the shared stride."""
    stride = 2 ** shared_level(variant)
    return SNIPPET_SIZE[0] // stride, SNIPPET_SIZE[1] // stride


def pooled_shape(variant: str) -> tuple[int, int, int]:
    """(height, width, channels) of a pooled box for `variant`, e.g. (32, 16, 512) for J3."""
    height, width = roi_size(variant)
    return height, width, STAGE_CHANNELS[shared_level(variant)]


class ReidBranch(tf.keras.Model):
    """Pooled features (M, h, w, c) -> embeddings (M, E).

    `call` returns the raw embeddings (the triplet losses train on them); `embed` the
    L2-normalised ones (inference).

    Args:
        variant: 'J2', 'J3' or 'J4'.
        rest: the replicated ResNet stages, C<k> -> {'C<k+1>', ..., 'C5'} (`split_resnet50`).
        embedding_dim: E.
    """

    def __init__(self, variant: str, rest: tf.keras.Model, embedding_dim: int = 128, **kwargs):
        super().__init__(**kwargs)
        if embedding_dim < 1:
            raise ValueError(f'embedding_dim must be >= 1, got {embedding_dim}')
        self.variant = variant
        self.pooled_shape = pooled_shape(variant)
        self.embedding_dim = embedding_dim
        self.rest = rest
        self.pool = tf.keras.layers.GlobalAveragePooling2D(dtype='float32', name='global_pool')
        self.embedding = tf.keras.layers.Dense(embedding_dim, dtype='float32', name='embedding')

    def call(self, pooled: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """(M, h, w, c) float32 pooled features -> (M, E) unnormalised embeddings."""
        stages = self.rest(pooled, training=training)
        return self.embedding(self.pool(stages['C5']))

    def embed(self, pooled: tf.Tensor) -> tf.Tensor:
        """(M, h, w, c) -> (M, E) L2-normalised embeddings, inference mode; M may be 0."""
        # CPU convolutions reject an empty batch, so M = 0 (an image without detections)
        # bypasses the network.
        return tf.cond(
            tf.shape(pooled)[0] > 0,
            lambda: tf.math.l2_normalize(self(pooled, training=False), axis=-1),
            lambda: tf.zeros([0, self.embedding_dim], tf.float32))


def build_reid_branch(variant: str, embedding_dim: int = 128, freeze_batch_norm: bool = False,
                      policy: str = 'float32', layout: str = 'keras') -> ReidBranch:
    """A re-ID branch with fresh (random) replicated stages; its variables are created here.

    Initialise it from a trained detector with `copy_detector_stages`.

    Args:
        variant: 'J2', 'J3' or 'J4'.
        embedding_dim: E.
        freeze_batch_norm: run the stages' batch norm in inference mode with fixed parameters
            (the detector's statistics), in training as at inference.
        policy: Keras dtype policy of the replicated stages, 'float32' or 'mixed_bfloat16'
            (bfloat16 compute, float32 variables); the embedding layer always computes in
            float32, so embeddings and losses are float32 either way.
        layout: the detector's ResNet-50 layout ('keras' or 'garden', `backbone.LAYOUTS`).
    """
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(policy)
    try:
        _, rest = split_resnet50(variant, freeze_batch_norm=freeze_batch_norm, layout=layout)
        branch = ReidBranch(variant, rest, embedding_dim, name=f'reid_{variant}')
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)
    branch(tf.zeros((1,) + pooled_shape(variant)), training=False)
    return branch


def copy_detector_stages(branch: ReidBranch, detector_rest: tf.keras.Model) -> None:
    """Initialises the branch's replicated stages with the detector's own ResNet stages.

    Args:
        branch: the re-ID branch.
        detector_rest: the trained detector's `rest` (same variant, same layer structure).

    Raises:
        ValueError: the two stage models do not have the same weights structure.
    """
    source, target = detector_rest.weights, branch.rest.weights
    if len(source) != len(target) or any(
            s.shape != t.shape for s, t in zip(source, target)):
        raise ValueError(f'the detector\'s stages ({detector_rest.name}, {len(source)} weights) '
                         f'do not match the re-ID branch\'s ({branch.rest.name}, {len(target)} '
                         f'weights); are they the same variant?')
    for s, t in zip(source, target):
        t.assign(s)
