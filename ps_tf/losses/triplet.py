"""The re-ID losses: TFA's triplet losses, and statistics of the triplets a batch holds.

Stage 2 and the joint fine-tuning train on P x K identity batches with the paper's two triplet
losses, TFA's (`tensorflow_addons`): semi-hard (FaceNet's mining: the closest negative farther
than the positive) and batch-hard (the farthest positive and the closest negative of each anchor).
Batch hard can use Hermans et al.'s soft margin, log(1 + exp(d+ - d-)) (TFA's `soft=True`): it
has no flat zero once a triplet is satisfied. (On the randomised synthetic world it collapsed the
same way as the hinge, positive and negative distances shrinking together: experiments/README.md
section 7.)
The functional forms (`tfa.losses.triplet_semihard_loss` / `triplet_hard_loss`, what the Keras
losses `TripletSemiHardLoss` / `TripletHardLoss` wrap) are used so that no Keras loss reduction
gets in the way of a distribution strategy. Both expect L2-normalised embeddings.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_addons as tfa

SEMI_HARD, HARD = 'semi_hard', 'hard'
TRIPLET_LOSSES = {SEMI_HARD: tfa.losses.triplet_semihard_loss, HARD: tfa.losses.triplet_hard_loss}


def triplet_loss(kind: str, labels: tf.Tensor, embeddings: tf.Tensor,
                 margin: float, soft_margin: bool = False) -> tf.Tensor:
    """The `kind` ('semi_hard' or 'hard') triplet loss of a batch (scalar).

    `soft_margin` (batch hard only) replaces the hinge max(d+ - d- + margin, 0) by
    log(1 + exp(d+ - d-)); `margin` is then unused.

    Raises:
        ValueError: an unknown kind, or a soft margin asked of the semi-hard loss (TFA has none).
    """
    if kind not in TRIPLET_LOSSES:
        raise ValueError(f'triplet loss must be one of {sorted(TRIPLET_LOSSES)}, got {kind!r}')
    if soft_margin and kind != HARD:
        raise ValueError('the soft margin exists for the batch-hard loss only (TFA\'s '
                         'triplet_semihard_loss has none)')
    soft = {'soft': True} if soft_margin else {}
    return TRIPLET_LOSSES[kind](labels, embeddings, margin=margin, **soft)


def triplet_statistics(embeddings: tf.Tensor, labels: tf.Tensor,
                       margin: float) -> dict[str, tf.Tensor]:
    """Batch statistics of the triplets, with TFA's distance (Euclidean, not squared).

    Args:
        embeddings: (B, E) float32 unnormalised embeddings.
        labels: (B,) int identity labels.
        margin: the triplet margin.

    Returns:
        Scalars: `nonzero_triplets` (fraction of the valid (a, p, n) triplets with
        d(a, p) - d(a, n) + margin > 0), `positive_distance` and `negative_distance` (mean over
        positive / negative pairs), `embedding_norm` (mean L2 norm).
    """
    distances = tfa.losses.metric_learning.pairwise_distance(embeddings, squared=False)
    labels = tf.reshape(labels, [-1])
    same = tf.equal(labels[:, None], labels[None, :])
    positive = tf.logical_and(same, tf.logical_not(tf.eye(tf.shape(labels)[0], dtype=tf.bool)))
    negative = tf.logical_not(same)
    valid = tf.logical_and(positive[:, :, None], negative[:, None, :])             # (B, B, B)
    hinge = distances[:, :, None] - distances[:, None, :] + margin
    active = tf.logical_and(valid, hinge > 0.0)

    def mean_where(values, mask):
        mask = tf.cast(mask, tf.float32)
        return tf.math.divide_no_nan(tf.reduce_sum(values * mask), tf.reduce_sum(mask))

    return {
        'nonzero_triplets': tf.math.divide_no_nan(tf.reduce_sum(tf.cast(active, tf.float32)),
                                                  tf.reduce_sum(tf.cast(valid, tf.float32))),
        'positive_distance': mean_where(distances, positive),
        'negative_distance': mean_where(distances, negative),
        'embedding_norm': tf.reduce_mean(tf.norm(embeddings, axis=-1)),
    }
