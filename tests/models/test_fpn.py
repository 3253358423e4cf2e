"""The feature pyramid trained in bfloat16 gets float32's gradients, also where P6 is 1 x 1
(64-pixel images, as in the tests' bfloat16 stage-1 fixture): there oneDNN's bfloat16 filter
gradient of P7's strided 3x3 convolution is uninitialised memory, which blew up P7's kernel in
the joint fine-tuning test one run in three."""

import numpy as np
import tensorflow as tf

from ps_tf.models.fpn import FeaturePyramid


def _pyramid(policy: str) -> FeaturePyramid:
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(policy)
    try:
        return FeaturePyramid(filters=64, name='fpn')
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def test_bfloat16_gradients_of_the_coarse_levels_match_float32_on_64_pixel_images():
    rng = np.random.default_rng(0)
    # C3-C5 of a 64-pixel image: strides 8, 16, 32; P6 is then 1 x 1.
    features = {name: tf.constant(rng.normal(size=(4, side, side, channels)), tf.float32)
                for name, side, channels in (('C3', 8, 32), ('C4', 4, 64), ('C5', 2, 128))}
    reference, mixed = _pyramid('float32'), _pyramid('mixed_bfloat16')
    reference(features)
    mixed(features)
    mixed.set_weights(reference.get_weights())
    weights = {'P6': rng.normal(size=(4, 1, 1, 64)), 'P7': rng.normal(size=(4, 1, 1, 64))}

    def gradients(pyramid):
        kernels = [pyramid.p6.kernel, pyramid.p7.kernel]
        with tf.GradientTape() as tape:
            levels = pyramid(features, training=True)
            loss = sum(tf.reduce_sum(tf.cast(levels[k], tf.float32) * w)
                       for k, w in weights.items())
        return [g.numpy() for g in tape.gradient(loss, kernels)]

    expected = gradients(reference)
    assert mixed(features)['P7'].dtype == tf.bfloat16   # the head still gets bfloat16 maps
    first = gradients(mixed)
    for _ in range(4):   # the broken kernel returned a different gradient on every call
        for a, b in zip(first, gradients(mixed)):
            np.testing.assert_array_equal(a, b)
    for got, want in zip(first, expected):
        assert np.all(np.isfinite(got))
        # bfloat16 inputs (8-bit mantissa): within a few per cent of the largest entry.
        np.testing.assert_allclose(got, want, atol=0.03 * np.abs(want).max())
