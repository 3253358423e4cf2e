"""Feature pyramid P3-P7 on ResNet stages C3-C5 (Lin et al., "Feature Pyramid Networks", 2017),
as RetinaNet builds it: P6 from C5 by a stride-2 3x3 convolution, P7 from ReLU(P6).

The 'garden' layout (`garden=True`) is the TensorFlow Model Garden's FPN instead, whose COCO
checkpoints load into it (`ps_tf.models.coco_init`): P6 from P5 (the output convolution's, not
C5), P7 from ReLU(P6), then a batch norm on each output level (epsilon 1e-3).

Under bfloat16 mixed precision, P6 and P7 are computed in float32: on oneDNN CPUs (TensorFlow
2.15, measured on Intel AMX and AMD AVX-512 BF16 machines) the bfloat16 filter gradient of a 3x3
stride-2 convolution over a 1 x 1 map is uninitialised memory, different on every call and up to
1e16. P6 is 1 x 1 on 64-pixel images, so P7's kernel blew up when the tests trained a bfloat16
detector at that size (the tiny preset itself trains in float32). These two maps are the
pyramid's smallest (5 x 5 and 3 x 3 at 320 pixels): their convolutions are about 1.4 % and
0.06 % of the ResNet-50's multiply-adds there."""

from __future__ import annotations

import tensorflow as tf

from ps_tf.models.garden import batch_norm


class FeaturePyramid(tf.keras.layers.Layer):
    """{'C3', 'C4', 'C5'} (B, H/8, W/8, 512) ... -> {'P3', ..., 'P7'}, each (B, h, w, filters)."""

    def __init__(self, filters: int = 256, garden: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.garden = garden
        conv = tf.keras.layers.Conv2D
        # String keys: checkpoints cannot track dicts with int keys.
        self.lateral = {f'C{k}': conv(filters, 1, name=f'lateral_c{k}') for k in (3, 4, 5)}
        self.output_conv = {f'P{k}': conv(filters, 3, padding='same', name=f'output_p{k}')
                            for k in (3, 4, 5)}
        coarse_dtype = 'float32' if self.compute_dtype == 'bfloat16' else None   # see above
        self.p6 = conv(filters, 3, strides=2, padding='same', name='p6', dtype=coarse_dtype)
        self.p7 = conv(filters, 3, strides=2, padding='same', name='p7', dtype=coarse_dtype)
        if garden:   # only then: the keras layout's checkpoints keep their structure
            self.norms = {f'P{k}': batch_norm(f'norm_p{k}') for k in range(3, 8)}

    @staticmethod
    def _upsample_to(x: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
        """Nearest-neighbour 2x upsampling, cropped to `like` (odd sizes round up in ResNet)."""
        up = tf.repeat(tf.repeat(x, 2, axis=1), 2, axis=2)
        return up[:, :tf.shape(like)[1], :tf.shape(like)[2], :]

    def call(self, features: dict[str, tf.Tensor],
             training: bool | None = None) -> dict[str, tf.Tensor]:
        p5 = self.lateral['C5'](features['C5'])
        p4 = self.lateral['C4'](features['C4'])
        p4 = p4 + self._upsample_to(p5, p4)
        p3 = self.lateral['C3'](features['C3'])
        p3 = p3 + self._upsample_to(p4, p3)
        pyramid = {'P3': self.output_conv['P3'](p3), 'P4': self.output_conv['P4'](p4),
                   'P5': self.output_conv['P5'](p5)}
        p6 = self.p6(pyramid['P5'] if self.garden else features['C5'])
        pyramid['P6'] = tf.cast(p6, pyramid['P5'].dtype)
        pyramid['P7'] = tf.cast(self.p7(tf.nn.relu(p6)), pyramid['P5'].dtype)
        if self.garden:
            pyramid = {k: self.norms[k](v, training=training) for k, v in pyramid.items()}
        return pyramid

    def get_config(self):
        return {**super().get_config(), 'filters': self.filters, 'garden': self.garden}
