"""ps_tf.precision: what each mixed-precision setting resolves to."""

import numpy as np
import pytest
import tensorflow as tf

from ps_tf import precision


def test_mixed_precision_setting(monkeypatch):
    assert precision.resolve_mixed_precision('float32') == 'float32'
    assert precision.resolve_mixed_precision('bfloat16') == 'bfloat16'
    monkeypatch.setattr(precision, 'cpu_has_bfloat16', lambda: True)
    assert precision.resolve_mixed_precision('auto') == (
        'float32' if tf.config.list_physical_devices('GPU') else 'bfloat16')
    assert precision.keras_policy('auto') == (
        'float32' if tf.config.list_physical_devices('GPU') else 'mixed_bfloat16')
    monkeypatch.setattr(precision, 'cpu_has_bfloat16', lambda: False)
    assert precision.resolve_mixed_precision('auto') == 'float32'
    assert precision.keras_policy('auto') == 'float32'
    with pytest.raises(ValueError, match='mixed_precision'):
        precision.resolve_mixed_precision('float16x')


@pytest.mark.parametrize('gpus, cpu_bfloat16, expected', [
    ([(8, 0)], False, 'bfloat16'),             # A100
    ([(9, 0), (8, 6)], True, 'bfloat16'),      # H100 + RTX 30xx
    ([(7, 0)], True, 'float16'),               # V100: the GPU decides, not the CPU
    ([(8, 0), (7, 5)], False, 'float16'),      # the slowest GPU decides
    ([(6, 1)], False, 'float16'),              # Titan X (Pascal), the paper's class
    ([], True, 'bfloat16'),                    # CPU with AVX-512 BF16 / AMX
    ([], False, 'float32'),
])
def test_auto_precision_by_device(gpus, cpu_bfloat16, expected):
    assert precision.auto_precision(gpus, cpu_bfloat16) == expected


def test_float16_setting_and_its_optimizer(monkeypatch):
    assert precision.resolve_mixed_precision('float16') == 'float16'
    assert precision.keras_policy('float16') == 'mixed_float16'
    sgd = tf.keras.optimizers.SGD(0.1)
    assert precision.training_optimizer(sgd, 'float32') is sgd
    assert precision.training_optimizer(sgd, 'bfloat16') is sgd
    wrapped = precision.training_optimizer(sgd, 'float16')
    assert isinstance(wrapped, tf.keras.mixed_precision.LossScaleOptimizer)
    assert precision.is_loss_scaled(wrapped) and not precision.is_loss_scaled(sgd)
    monkeypatch.setattr(precision, 'gpu_compute_capabilities', lambda: [(7, 5)])
    assert isinstance(precision.training_optimizer(tf.keras.optimizers.SGD(0.1), 'auto'),
                      tf.keras.mixed_precision.LossScaleOptimizer)


def _float16_dense():
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy('mixed_float16')
    try:
        layer = tf.keras.layers.Dense(1, kernel_initializer='ones')
        layer.build((None, 2))
        return layer
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def _step(layer, optimizer, x, factor=1.0):
    with tf.GradientTape() as tape:
        loss = factor * tf.reduce_sum(tf.cast(layer(x), tf.float32))
        to_differentiate = precision.scaled_loss(optimizer, loss)
    gradients = precision.unscaled_gradients(
        optimizer, tape.gradient(to_differentiate, layer.trainable_variables))
    optimizer.apply_gradients(zip(gradients, layer.trainable_variables))
    return gradients


def test_loss_scaling_keeps_small_float16_gradients_and_skips_overflowing_steps():
    """The wiring the training loops use: scaled_loss / unscaled_gradients around the tape."""
    x = tf.constant([[1e-4, 2e-4]], tf.float16)
    expected = 1e-4 * x.numpy().astype(np.float32).ravel()   # ~1e-8: below float16's range

    plain = _float16_dense()   # float16 compute without loss scaling: the gradient underflows
    gradients = _step(plain, tf.keras.optimizers.SGD(1.0), x, factor=1e-4)
    np.testing.assert_array_equal(gradients[0].numpy().ravel(), [0.0, 0.0])

    layer = _float16_dense()
    assert layer.compute_dtype == 'float16' and layer.kernel.dtype == tf.float32
    assert precision.computes_in_float16(layer)
    optimizer = precision.training_optimizer(tf.keras.optimizers.SGD(1.0), 'float16')
    gradients = _step(layer, optimizer, x, factor=1e-4)   # scaled by 2^15, then unscaled
    np.testing.assert_allclose(gradients[0].numpy().ravel(), expected, rtol=1e-3)
    np.testing.assert_allclose(layer.kernel.numpy().ravel(), 1 - expected, rtol=1e-7)

    # A step whose scaled gradient overflows float16 is skipped and the scale halves.
    scale = float(optimizer.loss_scale)
    kernel = layer.kernel.numpy().copy()
    _step(layer, optimizer, tf.constant([[60000.0, 60000.0]], tf.float16))
    np.testing.assert_array_equal(layer.kernel.numpy(), kernel)
    assert float(optimizer.loss_scale) == scale / 2
    assert not precision.computes_in_float16(tf.keras.layers.Dense(1))
