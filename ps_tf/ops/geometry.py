"""Geometry shared by the data pipelines, the models, inference and serving: how an image becomes
the square model input and how boxes move between the original image and that input.

Every image the detector sees becomes an `image_size` x `image_size` square (`resize_and_pad`) in
one of two ways, the stage-1 setting `DetectionConfig.resize_mode` (`RESIZE_MODES`):

- 'letterbox' (the default): resized keeping its aspect ratio, so that its longer side is
  `image_size`, and zero-padded at the bottom/right to the square;
- 'stretch': resized straight to the square (TF Model Garden's 640x640 RetinaNet input), each
  axis by its own scale; no padding, people of a 16:9 frame come out about 1.8x taller than
  letterboxed.

`image_info` records the original size, the resized size and the scale per axis, so that boxes can
be mapped into the square (`scale_boxes`) and detections back to original pixels
(`boxes_to_original`) in either mode. Re-ID features are ROI-aligned on a map of that square
(`roi_align`).
"""

from __future__ import annotations

import tensorflow as tf

RESIZE_MODES = ('letterbox', 'stretch')


def check_resize_mode(mode: str) -> str:
    """`mode` if it is one of `RESIZE_MODES`.

    Raises:
        ValueError: any other value, naming the allowed ones.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f'resize_mode must be one of {RESIZE_MODES} (\'letterbox\': aspect kept, '
                         f'padded; \'stretch\': resized to the square), got {mode!r}')
    return mode


def check_image_size(image_size: int) -> int:
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


def resize_and_pad(image: tf.Tensor, image_size: int,
                   mode: str = 'letterbox') -> tuple[tf.Tensor, tf.Tensor]:
    """Resizes an image to the square model input, as `mode` says (module docstring).

    Args:
        image: (H, W, 3) uint8 or float.
        image_size: side S of the square output, pixels.
        mode: 'letterbox' (aspect kept, longer side = S, padded bottom/right) or 'stretch'
            (bilinear to S x S, scale S / H and S / W).

    Returns:
        `image`: float32 (S, S, 3), pixel values 0-255, zeros in the padding (letterbox);
        `image_info`: float32 (4, 2), see the module docstring: original (H, W), resized (H, W),
        scale (sy, sx) = resized / original, zeros.

    Raises:
        ValueError: `mode` is not one of `RESIZE_MODES`.
    """
    check_resize_mode(mode)
    original = tf.cast(tf.shape(image)[:2], tf.float32)                     # (2,) H, W
    image = tf.cast(image, tf.float32)
    if mode == 'stretch':
        resized = tf.fill([2], float(image_size))
        image = tf.image.resize(image, [image_size, image_size],
                                method=tf.image.ResizeMethod.BILINEAR)
    else:
        scale = image_size / tf.reduce_max(original)
        resized = tf.clip_by_value(tf.round(original * scale), 1.0, float(image_size))
        image = tf.image.resize(image, tf.cast(resized, tf.int32),
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


def roi_align(feature_map: tf.Tensor, boxes_yxyx: tf.Tensor, box_image_index: tf.Tensor,
              image_size: int, crop_size: tuple[int, int]) -> tf.Tensor:
    """Bilinear ROI align of pixel boxes on a feature map of the padded square input.

    Args:
        feature_map: (B, h, w, c) the shared map of B images of side `image_size`.
        boxes_yxyx: (M, 4) pixel ymin, xmin, ymax, xmax in the padded square model input.
        box_image_index: (M,) int32, the image (row of `feature_map`) of each box.
        image_size: side S of the square model input, pixels.
        crop_size: (height, width) of the output, e.g. `roi_size(variant)`.

    Returns:
        (M, crop_height, crop_width, c) float32 pooled features (M may be 0).
    """
    if image_size <= 0:
        raise ValueError(f'image_size must be positive, got {image_size}')
    normalised = tf.cast(tf.reshape(boxes_yxyx, [-1, 4]), tf.float32) / float(image_size)
    return tf.image.crop_and_resize(tf.cast(feature_map, tf.float32), normalised,
                                    tf.cast(tf.reshape(box_image_index, [-1]), tf.int32),
                                    list(crop_size), method='bilinear')
