"""RetinaNet class and box subnets, shared across FPN levels (Lin et al., 2017, §4)."""

from __future__ import annotations

import math

import tensorflow as tf


class RetinaNetHead(tf.keras.layers.Layer):
    """Per-anchor person logits and box codes from the pyramid levels.

    Each subnet is `num_convs` 3x3 convolutions with ReLU (optionally batch-normalised, which
    helps training from scratch) and a final 3x3 convolution; convolution weights are shared by
    all levels. Batch norm is per level (as in the TF Model Garden's RetinaNet head): the levels'
    activations have different statistics, and one moving average shared by all five levels
    matches none of them at inference. With shared batch norm, two from-scratch synthetic runs of
    one preset reached detection AP 0.92 and 0.70 (train-split AP 0.96 and 0.76 for equal
    training losses: the gap was the inference-time statistics, not overfitting).
    The class bias starts at -log((1 - prior) / prior) so that every anchor starts as background
    with probability 1 - prior, which keeps the focal loss stable at the start.

    Call: {'P3', ..., 'P7'} -> (class_logits (B, N), box_outputs (B, N, 4)), N = all anchors in
    the anchor order of `anchors.py` (level, y, x, anchor).
    """

    def __init__(self, anchors_per_location: int, filters: int = 256, num_convs: int = 4,
                 prior: float = 0.01, use_batch_norm: bool = False, min_level: int = 3,
                 max_level: int = 7, **kwargs):
        super().__init__(**kwargs)
        self.anchors_per_location = anchors_per_location
        self.filters = filters
        self.num_convs = num_convs
        self.prior = prior
        self.use_batch_norm = use_batch_norm
        self.min_level = min_level
        self.max_level = max_level

        def init():   # a fresh initializer per layer: Keras warns about reusing one
            return tf.keras.initializers.RandomNormal(stddev=0.01)

        def convs(name):
            return [tf.keras.layers.Conv2D(filters, 3, padding='same', kernel_initializer=init(),
                                           name=f'{name}_conv{i}') for i in range(num_convs)]

        def norms(name):   # {'P<level>': [one batch norm per conv]}; empty without batch norm
            if not use_batch_norm:
                return {}
            return {f'P{level}': [tf.keras.layers.BatchNormalization(name=f'{name}_bn{i}_p{level}')
                                  for i in range(num_convs)]
                    for level in range(min_level, max_level + 1)}

        self.class_convs, self.class_norms = convs('class'), norms('class')
        self.box_convs, self.box_norms = convs('box'), norms('box')
        self.class_output = tf.keras.layers.Conv2D(
            anchors_per_location, 3, padding='same', kernel_initializer=init(),
            bias_initializer=tf.keras.initializers.Constant(-math.log((1 - prior) / prior)),
            dtype='float32', name='class_output')
        # Outputs in float32 even under mixed precision: the losses and NMS need the range.
        self.box_output = tf.keras.layers.Conv2D(anchors_per_location * 4, 3, padding='same',
                                                 kernel_initializer=init(), dtype='float32',
                                                 name='box_output')

    def _tower(self, x, convs, norms, level: str, training):
        for i, conv in enumerate(convs):
            x = conv(x)
            if norms:
                x = norms[level][i](x, training=training)
            x = tf.nn.relu(x)
        return x

    def call(self, pyramid: dict[str, tf.Tensor], training: bool | None = None):
        class_logits, box_outputs = [], []
        for level in range(self.min_level, self.max_level + 1):
            name = f'P{level}'
            x = pyramid[name]
            c = self._tower(x, self.class_convs, self.class_norms, name, training)
            b = self._tower(x, self.box_convs, self.box_norms, name, training)
            batch = tf.shape(x)[0]
            class_logits.append(tf.reshape(self.class_output(c), [batch, -1]))
            box_outputs.append(tf.reshape(self.box_output(b), [batch, -1, 4]))
        return tf.concat(class_logits, axis=1), tf.concat(box_outputs, axis=1)

    def get_config(self):
        return {**super().get_config(), 'anchors_per_location': self.anchors_per_location,
                'filters': self.filters, 'num_convs': self.num_convs, 'prior': self.prior,
                'use_batch_norm': self.use_batch_norm, 'min_level': self.min_level,
                'max_level': self.max_level}
