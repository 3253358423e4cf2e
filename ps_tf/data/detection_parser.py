"""Parsers: decoded examples (`decoder.decode_example`) to model inputs, with separate train and
eval paths (Model Garden's "input = decoder + parser").

Geometry shared by both paths (`ps_tf.ops.geometry.resize_and_pad`, `resize_mode`): the image
is resized keeping its aspect ratio so that its longer side is `image_size`, then padded with zeros
at the bottom and right to `image_size` x `image_size` ('letterbox'), or resized straight to that
square ('stretch'). Pixel values stay in 0-255 (float32); the model normalises them. The image's
top-left corner stays at the origin, so a box maps to the model frame by a per-axis scale alone.

`image_info` (float32 (4, 2), Model Garden's layout):
    row 0: original (height, width);
    row 1: resized (height, width) inside the padded square ((S, S) when stretched);
    row 2: scale (y, x) = resized / original;
    row 3: offset (y, x) of the image in the square, always (0, 0) here.

Everything is plain TF ops: the parsers run inside `tf.data.Dataset.map` (and eagerly, in tests).
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf

from ps_tf.ops.anchor_labeler import AnchorLabeler
from ps_tf.ops.anchors import AnchorConfig, generate_anchors
from ps_tf.ops.geometry import (check_image_size, check_resize_mode, flip_left_right,
                                resize_and_pad, scale_boxes)

DEFAULT_MAX_OBJECTS = 256


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
                 labeler: AnchorLabeler = AnchorLabeler(), flip_prob: float = 0.5,
                 resize_mode: str = 'letterbox'):
        """Builds the parser and the anchors of an `image_size` square input (once).

        Args:
            image_size: side S of the square model input, pixels.
            anchor_config: anchors per FPN level.
            labeler: assigns anchor targets.
            flip_prob: probability of a horizontal flip, in [0, 1].
            resize_mode: 'letterbox' or 'stretch' (`resize_and_pad`).
        """
        self.image_size = check_image_size(image_size)
        self.resize_mode = check_resize_mode(resize_mode)
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

        image, image_info = resize_and_pad(image, self.image_size, self.resize_mode)
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

    def __init__(self, image_size: int, max_objects: int = DEFAULT_MAX_OBJECTS,
                 resize_mode: str = 'letterbox'):
        """Builds the parser.

        Args:
            image_size: side S of the square model input, pixels.
            max_objects: ground-truth entries per image after padding; an image with more fails
                with an InvalidArgumentError naming the image (truncating would bias the metrics).
            resize_mode: 'letterbox' or 'stretch' (`resize_and_pad`), as the detector was trained.
        """
        self.image_size = check_image_size(image_size)
        self.resize_mode = check_resize_mode(resize_mode)
        if not isinstance(max_objects, int) or max_objects <= 0:
            raise ValueError(f'max_objects must be a positive int, got {max_objects!r}')
        self.max_objects = max_objects

    def __call__(self, decoded: Mapping[str, tf.Tensor]) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Parses one decoded example (`decode_example`'s output, unbatched)."""
        image, image_info = resize_and_pad(decoded['image'], self.image_size, self.resize_mode)
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
