"""The TensorFlow Model Garden's layout of ResNet-50 (the 'garden' layout), so that the Model
Garden's COCO RetinaNet checkpoints load into the detector (`ps_tf.models.coco_init`).

It differs from `tf.keras.applications.ResNet50` (the 'keras' layout, `backbone.resnet50`) in:
- ResNet v1.5: a bottleneck block downsamples in its 3x3 convolution (Keras: in the first 1x1);
- convolutions without bias; every batch norm with epsilon 1e-3, momentum 0.99;
- the stem: 7x7/2 'same' convolution, batch norm, ReLU, 3x3/2 'same' max pooling (Keras pads
  explicitly and uses 'valid');
- the input: RGB normalised with the ImageNet mean and standard deviation (Keras: BGR, mean
  subtracted). The Model Garden normalises in its input pipeline; here the trunk does it, so both
  layouts take the same [0, 255] RGB images.

Layer names follow the Keras application (`conv3_block4_out`, `conv3_block1_2_conv`, ...), so the
trunk / rest split of `backbone.split_resnet50` and the copies of `factory.with_variant` and the
re-ID branch work on either layout unchanged.
"""

from __future__ import annotations

import tensorflow as tf

# The Model Garden's normalisation (official/vision/ops/preprocess_ops.py), for [0, 255] RGB.
MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STDDEV_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)
# Its batch norm (the `retinanet_resnetfpn_coco` experiment's norm_activation).
NORM_EPSILON = 1e-3
NORM_MOMENTUM = 0.99
# (filters of the first two convolutions, blocks) of stages C2-C5.
STAGES = {2: (64, 3), 3: (128, 4), 4: (256, 6), 5: (512, 3)}


class GardenPreprocess(tf.keras.layers.Layer):
    """[0, 255] RGB to what the Model Garden's ResNet-50 was trained on: (x - mean) / std."""

    def call(self, images):
        images = tf.cast(images, tf.float32)
        return (images - tf.constant(MEAN_RGB)) / tf.constant(STDDEV_RGB)


def batch_norm(name: str) -> tf.keras.layers.BatchNormalization:
    """A batch norm with the Model Garden's settings."""
    return tf.keras.layers.BatchNormalization(epsilon=NORM_EPSILON, momentum=NORM_MOMENTUM,
                                              name=name)


def _bottleneck(x: tf.Tensor, filters: int, strides: int, projection: bool,
                name: str) -> tf.Tensor:
    """The Model Garden's `BottleneckBlock` (ResNet v1.5), as Keras layers named like the Keras
    application's (`<name>_0_conv` is the projection shortcut)."""
    conv = tf.keras.layers.Conv2D
    shortcut = x
    if projection:
        shortcut = conv(filters * 4, 1, strides=strides, use_bias=False, name=f'{name}_0_conv')(x)
        shortcut = batch_norm(f'{name}_0_bn')(shortcut)
    x = conv(filters, 1, use_bias=False, name=f'{name}_1_conv')(x)
    x = batch_norm(f'{name}_1_bn')(x)
    x = tf.keras.layers.Activation('relu', name=f'{name}_1_relu')(x)
    x = conv(filters, 3, strides=strides, padding='same', use_bias=False, name=f'{name}_2_conv')(x)
    x = batch_norm(f'{name}_2_bn')(x)
    x = tf.keras.layers.Activation('relu', name=f'{name}_2_relu')(x)
    x = conv(filters * 4, 1, use_bias=False, name=f'{name}_3_conv')(x)
    x = batch_norm(f'{name}_3_bn')(x)
    x = tf.keras.layers.Add(name=f'{name}_add')([x, shortcut])
    return tf.keras.layers.Activation('relu', name=f'{name}_out')(x)


def garden_resnet50(freeze_batch_norm: bool = False) -> tf.keras.Model:
    """The Model Garden's ResNet-50 (random weights) on normalised images of any size -> C5.

    Args:
        freeze_batch_norm: run every batch norm in inference mode with fixed parameters.
    """
    inputs = tf.keras.Input(shape=(None, None, 3))
    x = tf.keras.layers.Conv2D(64, 7, strides=2, padding='same', use_bias=False,
                               name='conv1_conv')(inputs)
    x = batch_norm('conv1_bn')(x)
    x = tf.keras.layers.Activation('relu', name='conv1_relu')(x)
    x = tf.keras.layers.MaxPool2D(3, strides=2, padding='same', name='pool1_pool')(x)
    for stage, (filters, blocks) in STAGES.items():
        for block in range(1, blocks + 1):
            strides = 2 if block == 1 and stage > 2 else 1
            x = _bottleneck(x, filters, strides, projection=block == 1,
                            name=f'conv{stage}_block{block}')
    model = tf.keras.Model(inputs, x, name='resnet50_garden')
    if freeze_batch_norm:
        for layer in model.layers:
            if isinstance(layer, tf.keras.layers.BatchNormalization):
                layer.trainable = False
    return model


def bottleneck_blocks() -> list[str]:
    """The names of the 16 bottleneck blocks in network order ('conv2_block1', ...)."""
    return [f'conv{stage}_block{block}' for stage, (_, blocks) in STAGES.items()
            for block in range(1, blocks + 1)]
