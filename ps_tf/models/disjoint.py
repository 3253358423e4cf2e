"""The disjoint baseline of the paper's Table 1b ("Disj."): the same RetinaNet detector, then a
separate ResNet-50 embedding network on 256 x 128 crops of the detected boxes.

Nothing is shared: each box is cropped from the padded input image itself (bilinear
`crop_and_resize`, the same box convention as the joint model's ROI align, so both models see the
same region), resized to 256 x 128 and embedded by a full ResNet-50 (its own C1-C5), global
average pooling and a linear embedding layer. All crops of a batch are taken by one
`crop_and_resize` and embedded in one forward pass.

`DisjointEmbedder` is a standalone Keras model on crops (M, 256, 128, 3) in [0, 255], so it can be
trained on ground-truth crops on its own; like `ReidBranch`, `call` returns the raw embeddings and
`embed` the L2-normalised ones. `DisjointModel` has the joint model's interface
(`detect_and_embed`, `embed_boxes`), so evaluation and search code take either.
"""

from __future__ import annotations

import tensorflow as tf

from ps_tf.models.backbone import preprocessing, resnet50_of_layout
from ps_tf.models.joint import PersonSearchModel
from ps_tf.models.reid import SNIPPET_SIZE
from ps_tf.models.retinanet import RetinaNetDetector
from ps_tf.ops.geometry import roi_align

DISJOINT = 'Disj'


class DisjointEmbedder(tf.keras.Model):
    """Person crops (M, 256, 128, 3) float32 in [0, 255] -> embeddings (M, E).

    Args:
        resnet: a ResNet-50 without classifier (`backbone.resnet50_of_layout`), images -> C5.
        embedding_dim: E.
        layout: the ResNet-50's layout ('keras' or 'garden'), which fixes its preprocessing.
    """

    def __init__(self, resnet: tf.keras.Model, embedding_dim: int = 128, layout: str = 'keras',
                 **kwargs):
        super().__init__(**kwargs)
        if embedding_dim < 1:
            raise ValueError(f'embedding_dim must be >= 1, got {embedding_dim}')
        self.crop_size = SNIPPET_SIZE
        self.embedding_dim = embedding_dim
        self.preprocess = preprocessing(layout)
        self.resnet = resnet
        self.pool = tf.keras.layers.GlobalAveragePooling2D(dtype='float32', name='global_pool')
        self.embedding = tf.keras.layers.Dense(embedding_dim, dtype='float32', name='embedding')

    def call(self, crops: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """(M, 256, 128, 3) float32 in [0, 255] -> (M, E) unnormalised embeddings."""
        features = self.resnet(self.preprocess(crops), training=training)
        return self.embedding(self.pool(features))

    def embed(self, crops: tf.Tensor) -> tf.Tensor:
        """(M, 256, 128, 3) -> (M, E) L2-normalised embeddings, inference mode; M may be 0."""
        # CPU convolutions reject an empty batch: M = 0 bypasses the network.
        return tf.cond(
            tf.shape(crops)[0] > 0,
            lambda: tf.math.l2_normalize(self(crops, training=False), axis=-1),
            lambda: tf.zeros([0, self.embedding_dim], tf.float32))


def build_disjoint_embedder(embedding_dim: int = 128, weights: str = 'none',
                            freeze_batch_norm: bool = False,
                            policy: str = 'float32', layout: str = 'keras') -> DisjointEmbedder:
    """A ResNet-50 embedding network for 256 x 128 person crops; its variables are created here.

    Args:
        embedding_dim: E.
        weights: ResNet-50 weights, as `backbone.resnet50` takes them ('none', 'imagenet' or a
            Keras weights file; 'none' only with the garden layout).
        freeze_batch_norm: fixed ResNet batch norm (inference mode in training too).
        policy: Keras dtype policy of the ResNet, 'float32' or 'mixed_bfloat16'; the embedding
            layer always computes in float32.
        layout: the ResNet-50's layout ('keras' or 'garden', `backbone.LAYOUTS`).
    """
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(policy)
    try:
        embedder = DisjointEmbedder(resnet50_of_layout(layout, weights, freeze_batch_norm),
                                    embedding_dim, layout, name='disjoint_embedder')
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)
    embedder(tf.zeros((1,) + SNIPPET_SIZE + (3,)), training=False)
    return embedder


class DisjointModel(PersonSearchModel):
    """Detections and embeddings of padded square images, detector and embedder disjoint.

    Args:
        detector: a RetinaNet detector (any variant: nothing of its trunk is reused).
        embedder: the crop embedding network (`build_disjoint_embedder`).
    """

    def __init__(self, detector: RetinaNetDetector, embedder: DisjointEmbedder,
                 name: str | None = None):
        super().__init__(name=name)
        self.detector = detector
        self.embedder = embedder
        self.variant = DISJOINT
        self.crop_size = embedder.crop_size
        self.embedding_dim = embedder.embedding_dim

    def region_source(self, images: tf.Tensor, detections: dict[str, tf.Tensor] | None = None
                      ) -> tf.Tensor:
        """The input images themselves (B, S, S, 3) in [0, 255]."""
        del detections   # nothing of the detector is reused
        return images

    def crop(self, images: tf.Tensor, boxes_yxyx: tf.Tensor,
             box_image_index: tf.Tensor) -> tf.Tensor:
        """(M, 4) pixel ymin, xmin, ymax, xmax boxes in the padded square input, (M,) int32
        image index -> (M, 256, 128, 3) float32 crops in [0, 255] (bilinear)."""
        return roi_align(images, boxes_yxyx, box_image_index, int(images.shape[1]),
                         self.crop_size)

    def embed_regions(self, source: tf.Tensor, boxes_yxyx: tf.Tensor,
                      box_image_index: tf.Tensor, image_size: int) -> tf.Tensor:
        """Crops of the input images, then the embedder (see `PersonSearchModel`)."""
        crops = roi_align(source, boxes_yxyx, box_image_index, image_size, self.crop_size)
        return self.embedder.embed(crops)
