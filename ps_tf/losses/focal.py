"""Sigmoid focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017, eq. 5)."""

import tensorflow as tf


def sigmoid_focal_loss(targets: tf.Tensor, logits: tf.Tensor, alpha: float = 0.25,
                       gamma: float = 2.0) -> tf.Tensor:
    """Element-wise focal loss, FL(p_t) = -alpha_t (1 - p_t)**gamma log(p_t).

    Args:
        targets: (...) float, 1 for the positive class, 0 for background.
        logits: (...) float, same shape.
        alpha: weight of the positives (1 - alpha for background).
        gamma: focusing parameter; 0 gives alpha-weighted cross-entropy.

    Returns:
        (...) float32 loss per element, not reduced.
    """
    targets = tf.cast(targets, tf.float32)
    logits = tf.cast(logits, tf.float32)
    # Cross-entropy from logits is the numerically stable -log(p_t).
    cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
    probs = tf.sigmoid(logits)
    p_t = targets * probs + (1.0 - targets) * (1.0 - probs)
    alpha_t = targets * alpha + (1.0 - targets) * (1.0 - alpha)
    return alpha_t * tf.pow(1.0 - p_t, gamma) * cross_entropy
