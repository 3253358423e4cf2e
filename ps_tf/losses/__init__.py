"""Losses: focal + smooth-L1 for detection (one file each); the triplet losses (TFA's) and their
batch statistics for re-ID (`triplet.py`)."""

from ps_tf.losses.detection import detection_loss
from ps_tf.losses.focal import sigmoid_focal_loss
from ps_tf.losses.smooth_l1 import smooth_l1_loss
from ps_tf.losses.triplet import HARD, SEMI_HARD, triplet_loss, triplet_statistics

__all__ = ['HARD', 'SEMI_HARD', 'detection_loss', 'sigmoid_focal_loss', 'smooth_l1_loss',
           'triplet_loss', 'triplet_statistics']
