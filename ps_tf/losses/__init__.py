"""Losses: focal + smooth-L1 for detection (one file each); the triplet losses are TFA's."""

from ps_tf.losses.detection import detection_loss
from ps_tf.losses.focal import sigmoid_focal_loss
from ps_tf.losses.smooth_l1 import smooth_l1_loss

__all__ = ['detection_loss', 'sigmoid_focal_loss', 'smooth_l1_loss']
