"""Feature pyramid P3-P7 on ResNet stages C3-C5 (Lin et al., "Feature Pyramid Networks", 2017),
as RetinaNet builds it: P6 from C5 by a stride-2 3x3 convolution, P7 from ReLU(P6)."""

from __future__ import annotations

import tensorflow as tf


class FeaturePyramid(tf.keras.layers.Layer):
    """{'C3', 'C4', 'C5'} (B, H/8, W/8, 512) ... -> {'P3', ..., 'P7'}, each (B, h, w, filters)."""

    def __init__(self, filters: int = 256, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        conv = tf.keras.layers.Conv2D
        # String keys: checkpoints cannot track dicts with int keys.
        self.lateral = {f'C{k}': conv(filters, 1, name=f'lateral_c{k}') for k in (3, 4, 5)}
        self.output_conv = {f'P{k}': conv(filters, 3, padding='same', name=f'output_p{k}')
                            for k in (3, 4, 5)}
        self.p6 = conv(filters, 3, strides=2, padding='same', name='p6')
        self.p7 = conv(filters, 3, strides=2, padding='same', name='p7')

    @staticmethod
    def _upsample_to(x: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
        """Nearest-neighbour 2x upsampling, cropped to `like` (odd sizes round up in ResNet)."""
        up = tf.repeat(tf.repeat(x, 2, axis=1), 2, axis=2)
        return up[:, :tf.shape(like)[1], :tf.shape(like)[2], :]

    def call(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        p5 = self.lateral['C5'](features['C5'])
        p4 = self.lateral['C4'](features['C4'])
        p4 = p4 + self._upsample_to(p5, p4)
        p3 = self.lateral['C3'](features['C3'])
        p3 = p3 + self._upsample_to(p4, p3)
        p6 = self.p6(features['C5'])
        p7 = self.p7(tf.nn.relu(p6))
        return {'P3': self.output_conv['P3'](p3), 'P4': self.output_conv['P4'](p4),
                'P5': self.output_conv['P5'](p5), 'P6': p6, 'P7': p7}

    def get_config(self):
        return {**super().get_config(), 'filters': self.filters}
