"""The triplet losses by name (`ps_tf.losses.triplet_loss`): hinge and soft-margin batch hard
against hand computation, and what the soft margin changes for the gradient."""

import numpy as np
import pytest
import tensorflow as tf

from ps_tf.losses import HARD, SEMI_HARD, triplet_loss

LABELS = np.array([0, 0, 1, 1, 2, 2])


def _embeddings(seed: int = 0) -> np.ndarray:
    values = np.random.default_rng(seed).normal(size=(6, 4)).astype(np.float32)
    return values / np.linalg.norm(values, axis=1, keepdims=True)


def _hardest(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per anchor: the farthest positive and the closest negative distance (Euclidean)."""
    d = np.linalg.norm(embeddings[:, None] - embeddings[None], axis=-1)
    same = LABELS[:, None] == LABELS[None]
    positive = np.where(same & ~np.eye(6, dtype=bool), d, -np.inf).max(axis=1)
    negative = np.where(~same, d, np.inf).min(axis=1)
    return positive, negative


@pytest.mark.parametrize('seed', [0, 1])
def test_batch_hard_hinge_and_soft_margin_match_hand_computation(seed):
    embeddings = _embeddings(seed)
    positive, negative = _hardest(embeddings)
    hinge = float(triplet_loss(HARD, tf.constant(LABELS), tf.constant(embeddings), 0.5))
    soft = float(triplet_loss(HARD, tf.constant(LABELS), tf.constant(embeddings), 0.5,
                              soft_margin=True))
    np.testing.assert_allclose(hinge, np.maximum(positive - negative + 0.5, 0).mean(), rtol=1e-5)
    np.testing.assert_allclose(soft, np.log1p(np.exp(positive - negative)).mean(), rtol=1e-5)


def test_soft_margin_keeps_pulling_when_the_hinge_is_satisfied():
    """Three tight, far-apart clusters satisfy every margin-0.5 triplet: the hinge gives no loss
    and no gradient, the soft margin still a gradient that tightens the clusters."""
    centres = np.eye(4, dtype=np.float32)[:3]
    noise = np.random.default_rng(0).normal(scale=0.05, size=(6, 4)).astype(np.float32)
    embeddings = tf.Variable(centres[LABELS] + noise)

    def loss_and_gradient(soft):
        with tf.GradientTape() as tape:
            loss = triplet_loss(HARD, tf.constant(LABELS), embeddings, 0.5, soft_margin=soft)
        return float(loss), tape.gradient(loss, embeddings).numpy()

    hinge, hinge_gradient = loss_and_gradient(False)
    soft, soft_gradient = loss_and_gradient(True)
    assert hinge == 0.0 and not hinge_gradient.any()
    assert soft > 0.0 and np.abs(soft_gradient).max() > 1e-3


def test_soft_margin_is_refused_for_the_semi_hard_loss():
    with pytest.raises(ValueError, match='batch-hard loss only'):
        triplet_loss(SEMI_HARD, tf.constant(LABELS), tf.constant(_embeddings()), 0.5,
                     soft_margin=True)
    with pytest.raises(ValueError, match='must be one of'):
        triplet_loss('lifted', tf.constant(LABELS), tf.constant(_embeddings()), 0.5)
