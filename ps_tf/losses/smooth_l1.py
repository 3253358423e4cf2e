"""Smooth-L1 (Huber) box regression loss (Girshick, "Fast R-CNN", ICCV 2015, eq. 3)."""

import tensorflow as tf


def smooth_l1_loss(targets: tf.Tensor, predictions: tf.Tensor, delta: float = 1.0) -> tf.Tensor:
    """Smooth-L1 summed over the 4 box coordinates.

    0.5 x**2 / delta where |x| < delta, else |x| - 0.5 delta (x = prediction - target). delta 1.0
    with targets scaled by (10, 10, 5, 5), as the TF Object Detection API's RetinaNet configs.

    Args:
        targets, predictions: (..., 4) encoded boxes.

    Returns:
        (...) float32 loss per box, not reduced.
    """
    diff = tf.abs(tf.cast(predictions, tf.float32) - tf.cast(targets, tf.float32))
    per_coordinate = tf.where(diff < delta, 0.5 * diff**2 / delta, diff - 0.5 * delta)
    return tf.reduce_sum(per_coordinate, axis=-1)
