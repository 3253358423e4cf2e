"""The RetinaNet training objective: focal loss + smooth-L1, each normalised by the positives."""

import tensorflow as tf

from ps_tf.losses.focal import sigmoid_focal_loss
from ps_tf.losses.smooth_l1 import smooth_l1_loss


def detection_loss(targets: dict[str, tf.Tensor], class_logits: tf.Tensor,
                   box_outputs: tf.Tensor, alpha: float = 0.25, gamma: float = 2.0,
                   delta: float = 1.0) -> dict[str, tf.Tensor]:
    """Losses of a batch.

    Args:
        targets: the anchor labeler's outputs, batched: `class_targets`, `class_weights`,
            `box_weights` (B, N), `box_targets` (B, N, 4), `num_positives` (B,).
        class_logits: (B, N) person logits, one per anchor.
        box_outputs: (B, N, 4) encoded box predictions.

    Returns:
        `class_loss`, `box_loss` and `total_loss`, scalars: sums over the batch divided by
        num_positives + 1. The +1 keeps the loss finite for a batch without any person (whose
        background anchors still teach the classifier); with people it changes the scale by one
        positive in thousands.
    """
    normaliser = tf.reduce_sum(tf.cast(targets['num_positives'], tf.float32)) + 1.0
    class_loss = tf.reduce_sum(
        sigmoid_focal_loss(targets['class_targets'], class_logits, alpha, gamma) *
        targets['class_weights']) / normaliser
    box_loss = tf.reduce_sum(
        smooth_l1_loss(targets['box_targets'], box_outputs, delta) *
        targets['box_weights']) / normaliser
    return {'class_loss': class_loss, 'box_loss': box_loss, 'total_loss': class_loss + box_loss}
