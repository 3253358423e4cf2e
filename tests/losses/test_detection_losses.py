"""Focal and smooth-L1 losses against hand-computed values, and the positive normalisation."""

import numpy as np
import tensorflow as tf

from ps_tf.losses import detection_loss, sigmoid_focal_loss, smooth_l1_loss


def test_focal_loss_known_values():
    # logit 0 -> p = 0.5: FL = alpha_t * 0.5**2 * log(2).
    values = sigmoid_focal_loss(tf.constant([1.0, 0.0]), tf.constant([0.0, 0.0]))
    np.testing.assert_allclose(values, [0.25 * 0.25 * np.log(2), 0.75 * 0.25 * np.log(2)],
                               rtol=1e-6)
    # A confident correct prediction costs almost nothing; gamma 0 is weighted cross-entropy.
    p = 1 / (1 + np.exp(-3.0))
    np.testing.assert_allclose(sigmoid_focal_loss(1.0, 3.0), 0.25 * (1 - p)**2 * -np.log(p),
                               rtol=1e-5)
    np.testing.assert_allclose(sigmoid_focal_loss(1.0, 3.0, gamma=0.0), 0.25 * -np.log(p),
                               rtol=1e-5)


def test_focal_loss_is_finite_for_extreme_logits():
    values = sigmoid_focal_loss(tf.constant([1.0, 0.0]), tf.constant([-200.0, 200.0]))
    assert np.all(np.isfinite(values)) and np.all(values.numpy() > 10)


def test_smooth_l1_known_values():
    loss = smooth_l1_loss(tf.zeros([2, 4]), tf.constant([[0.5, 0, 0, 0], [2.0, -3.0, 0, 0]]))
    np.testing.assert_allclose(loss, [0.125, 1.5 + 2.5], rtol=1e-6)


def _targets(num_positives):
    n = 6
    class_targets = np.zeros((1, n), np.float32)
    class_targets[0, :num_positives] = 1
    return {
        'class_targets': tf.constant(class_targets),
        'class_weights': tf.ones((1, n)),
        'box_targets': tf.ones((1, n, 4)),
        'box_weights': tf.constant(class_targets),
        'num_positives': tf.constant([float(num_positives)]),
    }


def test_detection_loss_normalised_by_positives_plus_one():
    targets = _targets(2)
    losses = detection_loss(targets, tf.zeros((1, 6)), tf.zeros((1, 6, 4)))
    focal_pos, focal_neg = 0.25 * 0.25 * np.log(2), 0.75 * 0.25 * np.log(2)
    np.testing.assert_allclose(losses['class_loss'], (2 * focal_pos + 4 * focal_neg) / 3,
                               rtol=1e-5)
    np.testing.assert_allclose(losses['box_loss'], 2 * 4 * 0.5 / 3, rtol=1e-5)
    np.testing.assert_allclose(losses['total_loss'], losses['class_loss'] + losses['box_loss'])


def test_detection_loss_is_finite_without_positives():
    losses = detection_loss(_targets(0), tf.zeros((1, 6)), tf.zeros((1, 6, 4)))
    assert np.isfinite(losses['total_loss']) and float(losses['box_loss']) == 0.0
    assert float(losses['class_loss']) > 0.0
