"""ResNet-50 split into the shared trunk (C1 up to C2, C3 or C4) and the rest of its stages.

The variants of the paper: J2 shares C1-C2 with the re-ID branch, J3 C1-C3, J4 C1-C4. The trunk
is one Keras model, computed once per image and used by both the detection branch and the re-ID
branch. Both parts are built from `tf.keras.applications.ResNet50` (its layer names identify the
stage outputs), so ImageNet weights and Keras weight files load as usual.

Inputs are float32 RGB images with values in [0, 255]; the trunk applies ResNet-50's own
preprocessing (`tf.keras.applications.resnet50.preprocess_input`).

Two layouts of ResNet-50: 'keras' (`tf.keras.applications.ResNet50`, above) and 'garden' (the
TensorFlow Model Garden's ResNet-50 v1.5, `ps_tf.models.garden`, whose COCO RetinaNet checkpoints
`--init_checkpoint` loads). Both name their layers alike, so everything below takes either.
"""

from __future__ import annotations

import os
from typing import Iterable, Mapping, Sequence

import h5py
import numpy as np
import tensorflow as tf
from absl import logging

from ps_tf.config import PRETRAINED_WEIGHTS
from ps_tf.models.garden import GardenPreprocess, garden_resnet50

# Output layer of each ResNet-50 stage: C2 stride 4 (256 ch), C3 stride 8 (512), C4 stride 16
# (1024), C5 stride 32 (2048).
STAGE_OUTPUTS = {2: 'conv2_block3_out', 3: 'conv3_block4_out', 4: 'conv4_block6_out',
                 5: 'conv5_block3_out'}
STAGE_CHANNELS = {2: 256, 3: 512, 4: 1024, 5: 2048}
VARIANTS = {'J2': 2, 'J3': 3, 'J4': 4}
LAYOUTS = ('keras', 'garden')   # tf.keras.applications' ResNet-50, the Model Garden's


def shared_level(variant: str) -> int:
    """The last stage the trunk of `variant` ('J2', 'J3', 'J4') shares."""
    if variant not in VARIANTS:
        raise ValueError(f'unknown variant {variant!r}; choose one of {sorted(VARIANTS)}')
    return VARIANTS[variant]


class ResNetPreprocess(tf.keras.layers.Layer):
    """[0, 255] RGB to what ResNet-50 was trained on (BGR, ImageNet mean subtracted)."""

    def call(self, images):
        return tf.keras.applications.resnet50.preprocess_input(tf.cast(images, tf.float32))


def resnet50(weights: str = 'none', freeze_batch_norm: bool = False) -> tf.keras.Model:
    """A ResNet-50 without its classifier, on images of any size.

    Args:
        weights: 'none' (random), 'imagenet' (Keras downloads them once into ~/.keras), or the
            path of a Keras weights file of `tf.keras.applications.ResNet50(include_top=False)`.
        freeze_batch_norm: run every BatchNormalization layer in inference mode with fixed
            parameters, as detectors fine-tuned from pretrained weights with small batches do.

    Raises:
        FileNotFoundError: `weights` is a path that does not exist.
        ValueError: the weights file does not fit ResNet-50, or `weights` is 'pretrained'.
        RuntimeError: ImageNet weights could not be downloaded.
    """
    keras_weights = None
    if weights == 'imagenet':
        keras_weights = 'imagenet'
    elif weights == PRETRAINED_WEIGHTS:   # a run's own pretraining: only train.py knows the run
        raise ValueError(f"backbone weights '{PRETRAINED_WEIGHTS}' mean a run's own pretraining "
                         'stage, which train.py resolves to <model_dir>/pretrain/resnet50.h5; '
                         'pass that file')
    elif weights not in ('none', None, ''):
        if not os.path.exists(weights) and not os.path.exists(weights + '.index'):
            raise FileNotFoundError(f'backbone weights file {weights} does not exist (expected '
                                    "'none', 'imagenet' or the path of ResNet-50 weights)")
    try:
        model = tf.keras.applications.ResNet50(include_top=False, weights=keras_weights,
                                               input_shape=(None, None, 3))
    except Exception as error:   # network errors come in several types
        if keras_weights is None:
            raise
        raise RuntimeError('could not download the ImageNet ResNet-50 weights (no network?); '
                           'pass --weights=none or the path of a local weights file') from error
    if keras_weights is None and weights not in ('none', None, ''):
        try:
            model.load_weights(weights)
        except (ValueError, OSError, tf.errors.OpError) as error:   # OSError: not HDF5
            raise ValueError(f'{weights}: not ResNet-50 (include_top=False) weights: {error}') \
                from error
        logging.info('loaded ResNet-50 weights from %s', weights)
    if freeze_batch_norm:
        for layer in model.layers:
            if isinstance(layer, tf.keras.layers.BatchNormalization):
                layer.trainable = False
    return model


def is_weights_file(path: str) -> bool:
    """True when `path` is a Keras HDF5 weights file (what `Model.save_weights('*.h5')` and the
    pretraining stage write), which `read_weights_file` reads without building a model."""
    return os.path.isfile(path) and h5py.is_hdf5(path)


def read_weights_file(path: str, layer_names: Iterable[str]) -> dict[str, list[np.ndarray]]:
    """Layer name -> weight arrays (in the layer's own order) of the `layer_names` a Keras HDF5
    weights file holds (the others are not read; a missing one is `assign_layer_weights`' to
    name).

    Why not `load_weights` on a fresh ResNet-50: stage 2 needs only the stages after the shared
    one, and a second ResNet-50 built (under the strategy's scope) only to copy them from is
    wasted work.

    Raises:
        ValueError: the file is not a Keras HDF5 weights file (named).
    """
    def text(value):
        return value.decode() if isinstance(value, bytes) else value

    try:
        with h5py.File(path, 'r') as file:
            stored = {text(name) for name in file.attrs['layer_names']}
            return {name: [np.asarray(file[name][text(weight)])
                           for weight in file[name].attrs['weight_names']]
                    for name in layer_names if name in stored}
    except (OSError, KeyError) as error:
        raise ValueError(f'{path}: not a Keras HDF5 weights file ({error})') from error


def assign_layer_weights(layers: Mapping[str, tf.keras.layers.Layer],
                         weights: Mapping[str, Sequence[np.ndarray | tf.Variable]],
                         source: str) -> None:
    """Gives each of `layers` (by name) its values from `weights`: a file's arrays
    (`read_weights_file`) or another model's variables.

    Raises:
        ValueError: a layer is missing from `source`, or its weights differ in number or shape
            (the layer, both shapes and `source` named).
    """
    for name, layer in layers.items():
        if name not in weights:
            raise ValueError(f'{source} has no weights for layer {name}: not a ResNet-50 of '
                             'the same layout (include_top=False)?')
        values = weights[name]
        if len(values) != len(layer.weights) or any(
                tuple(v.shape) != tuple(w.shape) for v, w in zip(values, layer.weights)):
            raise ValueError(f'{source}: layer {name} holds shapes '
                             f'{[tuple(v.shape) for v in values]}, the model expects '
                             f'{[tuple(w.shape) for w in layer.weights]}')
        for variable, value in zip(layer.weights, values):
            variable.assign(value)
    logging.info('loaded %d layers\' weights from %s', len(layers), source)


def check_layout(layout: str) -> None:
    """Raises ValueError unless `layout` is one of `LAYOUTS`."""
    if layout not in LAYOUTS:
        raise ValueError(f'unknown layout {layout!r}; choose one of {list(LAYOUTS)}')


def preprocessing(layout: str, name: str = 'resnet_preprocess') -> tf.keras.layers.Layer:
    """The layer that turns [0, 255] RGB images into the input of `layout`'s ResNet-50."""
    check_layout(layout)
    return ResNetPreprocess(name=name) if layout == 'keras' else GardenPreprocess(name=name)


def resnet50_of_layout(layout: str = 'keras', weights: str = 'none',
                       freeze_batch_norm: bool = False) -> tf.keras.Model:
    """`resnet50` ('keras') or `garden.garden_resnet50` ('garden'; random weights only: it is
    initialised from a Model Garden checkpoint, `ps_tf.models.coco_init`).

    Raises:
        ValueError: unknown layout, or weights other than 'none' for the garden layout.
    """
    check_layout(layout)
    if layout == 'keras':
        return resnet50(weights, freeze_batch_norm)
    if weights not in ('none', None, ''):
        raise ValueError(f'weights={weights!r}: the garden layout has no ImageNet or Keras '
                         'weights; start it from a Model Garden RetinaNet checkpoint '
                         '(--init_checkpoint) with --weights=none')
    return garden_resnet50(freeze_batch_norm)


def split_resnet50(variant: str, weights: str = 'none', freeze_batch_norm: bool = False,
                   layout: str = 'keras') -> tuple[tf.keras.Model, tf.keras.Model]:
    """ResNet-50 (of `layout`, see `LAYOUTS`) cut after the shared stage of `variant`.

    Returns:
        trunk: images (B, H, W, 3) in [0, 255] -> {'C2', ..., 'C<k>'} (k = shared level); the
            last one is the shared feature map.
        rest: C<k> -> {'C<k+1>', ..., 'C5'}, the detection branch's own ResNet stages.
        Together they hold exactly the layers (and weights) of one ResNet-50.
    """
    level = shared_level(variant)
    full = resnet50_of_layout(layout, weights, freeze_batch_norm)
    stage = {k: full.get_layer(name).output for k, name in STAGE_OUTPUTS.items()}
    images = tf.keras.Input(shape=(None, None, 3), name='images')
    preprocessed = preprocessing(layout)(images)
    resnet_to_shared = tf.keras.Model(full.input, {f'C{k}': stage[k] for k in range(2, level + 1)})
    trunk = tf.keras.Model(images, resnet_to_shared(preprocessed), name=f'trunk_{variant}')
    rest = tf.keras.Model(stage[level], {f'C{k}': stage[k] for k in range(level + 1, 6)},
                          name=f'resnet_rest_{variant}')
    return trunk, rest
