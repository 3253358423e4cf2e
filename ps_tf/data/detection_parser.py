"""Parsers: decoded examples (`decoder.decode_example`) to model inputs, with separate train and
eval paths (Model Garden's "input = decoder + parser").

Geometry shared by both paths: the image is resized keeping its aspect ratio so that its longer
side is `image_size`, then padded with zeros at the bottom and right to `image_size` x
`image_size`. Pixel values stay in 0-255 (float32); the model normalises them. The image's top-left
corner stays at the origin, so a box maps to the model frame by a per-axis scale alone.

`image_info` (float32 (4, 2), Model Garden's layout):
    row 0: original (height, width);
    row 1: resized (height, width) inside the padded square;
    row 2: scale (y, x) = resized / original;
    row 3: offset (y, x) of the image in the square, always (0, 0) here.

Everything is plain TF ops: the parsers run inside `tf.data.Dataset.map` (and eagerly, in tests).
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf

from ps_tf.models.anchor_labeler import AnchorLabeler
from ps_tf.models.anchors import AnchorConfig, generate_anchors

DEFAULT_MAX_OBJECTS = 256


def _check_image_size(image_size: int) -> int:
    if not isinstance(image_size, int) or image_size <= 0:
        raise ValueError(f'image_size must be a positive int (pixels), got {image_size!r}')
    return image_size


def flip_left_right(image: tf.Tensor, boxes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Mirrors an image and its boxes horizontally.

    Args:
        image: (H, W, C) any dtype.
        boxes: (K, 4) float32 pixel ymin, xmin, ymax, xmax in the image's frame.

    Returns:
        The flipped image (H, W, C) and boxes (K, 4) pixel ymin, xmin, ymax, xmax: a pixel column
        x (continuous coordinate) goes to W - x.
    """
    width = tf.cast(tf.shape(image)[1], boxes.dtype)
    ymin, xmin, ymax, xmax = tf.unstack(boxes, num=4, axis=-1)
    flipped_boxes = tf.stack([ymin, width - xmax, ymax, width - xmin], axis=-1)
    return tf.image.flip_left_right(image), flipped_boxes


def resize_and_pad(image: tf.Tensor, image_size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Resizes keeping the aspect ratio (longer side = `image_size`) and pads bottom/right.

    Args:
        image: (H, W, 3) uint8 or float.
        image_size: side S of the square output, pixels.

    Returns:
        `image`: float32 (S, S, 3), pixel values 0-255, zeros in the padding;
        `image_info`: float32 (4, 2), see the module docstring.
    """
    original = tf.cast(tf.shape(image)[:2], tf.float32)                     # (2,) H, W
    scale = image_size / tf.reduce_max(original)
    resized = tf.clip_by_value(tf.round(original * scale), 1.0, float(image_size))
    image = tf.image.resize(tf.cast(image, tf.float32), tf.cast(resized, tf.int32),
                            method=tf.image.ResizeMethod.BILINEAR)
    image = tf.image.pad_to_bounding_box(image, 0, 0, image_size, image_size)
    image = tf.ensure_shape(image, [image_size, image_size, 3])
    image_info = tf.stack([original, resized, resized / original, tf.zeros([2])], axis=0)
    return image, image_info


def scale_boxes(boxes: tf.Tensor, image_info: tf.Tensor) -> tf.Tensor:
    """Original-frame boxes to the model frame.

    Args:
        boxes: (K, 4) float32 pixel ymin, xmin, ymax, xmax in the original image.
        image_info: (4, 2) from `resize_and_pad`.

    Returns:
        (K, 4) float32 pixel ymin, xmin, ymax, xmax in the padded square.
    """
    scale = tf.tile(image_info[2], [2])                                     # (4,) sy, sx, sy, sx
    return boxes * scale


def boxes_to_original(boxes_yxyx: tf.Tensor, image_info: tf.Tensor) -> tf.Tensor:
    """Maps model-frame boxes back to the original image, as the evaluation wants them.

    Args:
        boxes_yxyx: (..., D, 4) pixel ymin, xmin, ymax, xmax in the padded square model input,
            e.g. (D, 4) for one image or (B, D, 4) for a batch.
        image_info: (..., 4, 2) from `EvalParser` with the same leading (batch) dimensions, e.g.
            (4, 2) or (B, 4, 2).

    Returns:
        (..., D, 4) float32 pixel x1, y1, x2, y2 in the original image, clipped to it (a box that
        reaches into the padding ends at the image border).
    """
    boxes_yxyx = tf.cast(boxes_yxyx, tf.float32)
    image_info = tf.cast(image_info, tf.float32)
    scale = image_info[..., 2:3, :]                                          # (..., 1, 2) sy, sx
    original = image_info[..., 0:1, :]                                       # (..., 1, 2) H, W
    ymin, xmin, ymax, xmax = tf.unstack(boxes_yxyx, num=4, axis=-1)          # (..., D) each
    sy, sx = scale[..., 0], scale[..., 1]
    height, width = original[..., 0], original[..., 1]
    x1 = tf.clip_by_value(xmin / sx, 0.0, width)
    y1 = tf.clip_by_value(ymin / sy, 0.0, height)
    x2 = tf.clip_by_value(xmax / sx, 0.0, width)
    y2 = tf.clip_by_value(ymax / sy, 0.0, height)
    return tf.stack([x1, y1, x2, y2], axis=-1)


class TrainParser:
    """Training path: random flip, resize + pad, anchor targets.

    Call it on a decoded example (`decoder.decode_example`); returns `(image, targets)`:
    `image` float32 (S, S, 3) pixel values 0-255; `targets` the labeler's outputs,
    `class_targets` (N,), `class_weights` (N,), `box_targets` (N, 4), `box_weights` (N,),
    `num_positives` (), with N the number of anchors of an S x S input. Images without people
    (or whose people all vanish) give all-background targets; they are kept, they teach the
    background.
    """

    def __init__(self, image_size: int, anchor_config: AnchorConfig = AnchorConfig(),
                 labeler: AnchorLabeler = AnchorLabeler(), flip_prob: float = 0.5):
        """Builds the parser and the anchors of an `image_size` square input (once).

        Args:
            image_size: side S of the square model input, pixels.
            anchor_config: anchors per FPN level.
            labeler: assigns anchor targets.
            flip_prob: probability of a horizontal flip, in [0, 1].
        """
        self.image_size = _check_image_size(image_size)
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f'flip_prob must be in [0, 1], got {flip_prob}')
        self.flip_prob = float(flip_prob)
        self.anchor_config = anchor_config
        self.labeler = labeler
        # (N, 4) pixel yxyx in the padded square; a constant of every traced map function.
        self.anchors = tf.constant(generate_anchors(anchor_config, image_size), tf.float32)

    @property
    def num_anchors(self) -> int:
        return int(self.anchors.shape[0])

    def __call__(self, decoded: Mapping[str, tf.Tensor],
                 seed: tf.Tensor | None = None) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Parses one decoded example.

        Args:
            decoded: `decode_example`'s output (unbatched); uses `image`, `boxes` (K, 4) pixel
                ymin, xmin, ymax, xmax in the original image, and `ignore` (K,).
            seed: optional int32/int64 (2,) seed of a stateless flip draw (for reproducible
                pipelines); None draws with a stateful random op.

        Returns:
            `(image, targets)` as described in the class docstring.
        """
        image = decoded['image']
        boxes = tf.reshape(tf.cast(decoded['boxes'], tf.float32), [-1, 4])
        ignore = tf.reshape(tf.cast(decoded['ignore'], tf.bool), [-1])

        if seed is None:
            draw = tf.random.uniform([])
        else:
            draw = tf.random.stateless_uniform([], seed=tf.cast(seed, tf.int64))
        image, boxes = tf.cond(draw < self.flip_prob,
                               lambda: flip_left_right(image, boxes),
                               lambda: (image, boxes))

        image, image_info = resize_and_pad(image, self.image_size)
        boxes = scale_boxes(boxes, image_info)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])    # drop zero-area boxes
        targets = self.labeler(self.anchors, tf.boolean_mask(boxes, keep),
                               tf.boolean_mask(ignore, keep))
        num_anchors = self.num_anchors
        targets = {
            'class_targets': tf.ensure_shape(targets['class_targets'], [num_anchors]),
            'class_weights': tf.ensure_shape(targets['class_weights'], [num_anchors]),
            'box_targets': tf.ensure_shape(targets['box_targets'], [num_anchors, 4]),
            'box_weights': tf.ensure_shape(targets['box_weights'], [num_anchors]),
            'num_positives': tf.ensure_shape(targets['num_positives'], []),
        }
        return image, targets


class EvalParser:
    """Evaluation path: resize + pad (no flip) and the ground truth padded to a fixed count.

    Call it on a decoded example; returns `(image, labels)`: `image` float32 (S, S, 3) pixel
    values 0-255, and `labels` a dict of
    `image_info` float32 (4, 2) (module docstring; `boxes_to_original` uses it);
    `gt_boxes` float32 (max_objects, 4) pixel x1, y1, x2, y2 in the original image as annotated
        (the evaluation format), zeros past `num_objects`;
    `gt_ignore` bool (max_objects,), False past `num_objects`;
    `gt_person_id` int64 (max_objects,), -1 past `num_objects`;
    `num_objects` int32 (), the number of real entries (ignore regions included);
    `filename` string (); `protocol_index` int32 ().
    All shapes are static, so `Dataset.batch` stacks them.
    """

    def __init__(self, image_size: int, max_objects: int = DEFAULT_MAX_OBJECTS):
        """Builds the parser.

        Args:
            image_size: side S of the square model input, pixels.
            max_objects: ground-truth entries per image after padding; an image with more fails
                with an InvalidArgumentError naming the image (truncating would bias the metrics).
        """
        self.image_size = _check_image_size(image_size)
        if not isinstance(max_objects, int) or max_objects <= 0:
            raise ValueError(f'max_objects must be a positive int, got {max_objects!r}')
        self.max_objects = max_objects

    def __call__(self, decoded: Mapping[str, tf.Tensor]) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Parses one decoded example (`decode_example`'s output, unbatched)."""
        image, image_info = resize_and_pad(decoded['image'], self.image_size)
        boxes = tf.reshape(tf.cast(decoded['annotated_boxes'], tf.float32), [-1, 4])
        num_objects = tf.shape(boxes, out_type=tf.int32)[0]
        check = tf.debugging.Assert(
            num_objects <= self.max_objects,
            [f'EvalParser: more ground-truth objects than max_objects={self.max_objects} '
             f'(raise max_objects) in image', decoded['filename'], 'objects:', num_objects])
        with tf.control_dependencies([check]):
            padding = self.max_objects - num_objects
        labels = {
            'image_info': image_info,
            'gt_boxes': self._pad(boxes, padding, 0.0, [self.max_objects, 4]),
            'gt_ignore': self._pad(tf.cast(decoded['ignore'], tf.bool), padding, False,
                                   [self.max_objects]),
            'gt_person_id': self._pad(tf.cast(decoded['person_id'], tf.int64), padding, -1,
                                      [self.max_objects]),
            'num_objects': num_objects,
            'filename': decoded['filename'],
            'protocol_index': tf.cast(decoded.get('protocol_index', -1), tf.int32),
        }
        return image, labels

    @staticmethod
    def _pad(values: tf.Tensor, padding: tf.Tensor, fill, shape: list[int]) -> tf.Tensor:
        paddings = [[0, padding]] + [[0, 0]] * (len(shape) - 1)
        padded = tf.pad(values, paddings, constant_values=tf.cast(fill, values.dtype))
        return tf.ensure_shape(padded, shape)
