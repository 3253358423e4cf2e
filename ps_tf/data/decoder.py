"""Decoder: one TFDS example of the shared schema (`tfds_builders/schema.py`) to plain tensors.

The first half of Model Garden's "input = decoder + parser": nothing here augments or resizes, it
only names the fields the parsers need, in the box format they use.
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf
import tensorflow_datasets as tfds


def partial_decoding() -> tfds.decode.PartialDecoding:
    """The TFDS `decoders` argument for detection pipelines.

    Reads only the fields `decode_example` uses (the `query` features are never parsed) and leaves
    the JPEG undecoded, so that shuffle buffers hold small encoded images and the decoding runs in
    the pipeline's own parallel map (`decode_example` decodes it).
    """
    return tfds.decode.PartialDecoding(
        {
            'image': True,
            'image/filename': True,
            'protocol_index': True,
            'objects': {'bbox': True, 'box': True, 'person_id': True, 'ignore': True},
        },
        decoders={'image': tfds.decode.SkipDecoding()})


def decode_example(example: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Turns a TFDS example of the shared schema into plain tensors.

    Works on examples as `tfds.builder(...).as_dataset()` yields them (image decoded) and on
    examples read with `partial_decoding()` (image still an encoded JPEG/PNG string).

    Args:
        example: the TFDS example dict (unbatched): `image`, `image/filename`, `objects/...`;
            `protocol_index` is optional.

    Returns:
        A dict of
        `image`: uint8 (H, W, 3);
        `boxes`: float32 (K, 4) pixel ymin, xmin, ymax, xmax, clipped to the image (from the
            normalised `objects/bbox`);
        `annotated_boxes`: float32 (K, 4) pixel x1, y1, x2, y2 exactly as annotated (may leave the
            image; `objects/box`), the evaluation's ground-truth format;
        `ignore`: bool (K,), ignore regions;
        `person_id`: int64 (K,), identity or -1;
        `filename`: string ();
        `protocol_index`: int32 (), -1 when the example has none;
        `image_size`: int32 (2,) = (H, W).
    """
    image = example['image']
    if image.dtype == tf.string:
        image = tf.io.decode_image(image, channels=3, expand_animations=False)
    image = tf.ensure_shape(image, [None, None, 3])
    image_size = tf.shape(image, out_type=tf.int32)[:2]
    height_width = tf.cast(image_size, tf.float32)
    objects = example['objects']
    scale = tf.concat([height_width, height_width], axis=0)          # (4,) H, W, H, W
    boxes = tf.reshape(tf.cast(objects['bbox'], tf.float32), [-1, 4]) * scale
    protocol_index = example.get('protocol_index', tf.constant(-1, tf.int32))
    return {
        'image': image,
        'boxes': boxes,
        'annotated_boxes': tf.reshape(tf.cast(objects['box'], tf.float32), [-1, 4]),
        'ignore': tf.reshape(tf.cast(objects['ignore'], tf.bool), [-1]),
        'person_id': tf.reshape(tf.cast(objects['person_id'], tf.int64), [-1]),
        'filename': example['image/filename'],
        'protocol_index': tf.cast(protocol_index, tf.int32),
        'image_size': image_size,
    }
