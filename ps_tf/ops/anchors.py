"""RetinaNet anchors on the FPN levels, and the box coder that turns boxes into regression targets.

Box format everywhere in this module: pixel ymin, xmin, ymax, xmax (the order TF's NMS and
`crop_and_resize` use), in the padded square model input.

Anchor order (the heads' outputs must follow it): level by level from `min_level`; within a
level, row-major over the feature grid (y, then x); at each position, scale by scale, and for each
scale every aspect ratio. So a head output of shape (B, H, W, A * K) reshapes to (B, H * W * A, K).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf


# The anchors of the Model Garden's COCO RetinaNet (`retinanet_resnetfpn_coco`: aspect ratios
# [0.5, 1, 2] as width / height, 3 scales, anchor size 4) in this module's convention and order.
COCO_ASPECT_RATIOS = (2.0, 1.0, 0.5)


@dataclasses.dataclass(frozen=True)
class AnchorConfig:
    """Anchors per FPN level.

    Attributes:
        min_level, max_level: FPN levels (stride 2**level); RetinaNet uses P3-P7.
        num_scales: octave scales per level: 2**(k / num_scales), k = 0..num_scales-1.
        aspect_ratios: height / width of the anchors. People are tall (a standing person's box
            is 2-3 times as high as wide), so the default is 1, 2 and 3 rather than COCO's
            (`COCO_ASPECT_RATIOS`: the Model Garden's 0.5, 1, 2, which it states as width /
            height, in its order).
        anchor_size: base size in strides: a level's smallest anchor is anchor_size * stride
            pixels (4 * 8 = 32 px at P3).
    """
    min_level: int = 3
    max_level: int = 7
    num_scales: int = 3
    aspect_ratios: tuple[float, ...] = (1.0, 2.0, 3.0)
    anchor_size: float = 4.0

    @property
    def anchors_per_location(self) -> int:
        return self.num_scales * len(self.aspect_ratios)

    def feature_size(self, image_size: int, level: int) -> int:
        """Side of level `level`'s feature map for a square input of `image_size` pixels (as
        ResNet's strided 'same' convolutions produce it: ceil division at every stride-2 step)."""
        size = image_size
        for _ in range(level):
            size = -(-size // 2)
        return size


def generate_anchors(config: AnchorConfig, image_size: int) -> np.ndarray:
    """All anchors of a square input.

    Returns:
        (N, 4) float32 pixel ymin, xmin, ymax, xmax, in the module's anchor order.
    """
    per_level = []
    for level in range(config.min_level, config.max_level + 1):
        stride = 2**level
        side = config.feature_size(image_size, level)
        centres = (np.arange(side, dtype=np.float64) + 0.5) * stride
        cy, cx = np.meshgrid(centres, centres, indexing='ij')            # (side, side)
        sizes = []
        for k in range(config.num_scales):
            base = config.anchor_size * stride * 2**(k / config.num_scales)
            for ratio in config.aspect_ratios:
                sizes.append((base * np.sqrt(ratio), base / np.sqrt(ratio)))    # (h, w)
        h, w = np.asarray(sizes).T                                          # (A,)
        cy, cx = cy[..., None], cx[..., None]                               # (side, side, 1)
        boxes = np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)
        per_level.append(boxes.reshape(-1, 4))
    return np.concatenate(per_level).astype(np.float32)


def anchors_per_level(config: AnchorConfig, image_size: int) -> list[int]:
    """Number of anchors of each level, to split a flat (N, ...) tensor back into levels."""
    return [config.feature_size(image_size, level)**2 * config.anchors_per_location
            for level in range(config.min_level, config.max_level + 1)]


@dataclasses.dataclass(frozen=True)
class BoxCoder:
    """Faster R-CNN box coding, (dy / ha, dx / wa, log(h / ha), log(w / wa)) times `scales`.

    The default scales (10, 10, 5, 5) are those of the TF Object Detection API's RetinaNet
    configs, which bring the targets to about unit variance for the smooth-L1 loss.
    """
    scales: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)

    def encode(self, boxes: tf.Tensor, anchors: tf.Tensor) -> tf.Tensor:
        """Boxes (..., 4) and anchors (..., 4), both pixel yxyx, to targets (..., 4)."""
        box_h, box_w, box_cy, box_cx = _centre_form(boxes)
        anchor_h, anchor_w, anchor_cy, anchor_cx = _centre_form(anchors)
        box_h, box_w = tf.maximum(box_h, 1e-6), tf.maximum(box_w, 1e-6)
        sy, sx, sh, sw = self.scales
        return tf.stack([sy * (box_cy - anchor_cy) / anchor_h, sx * (box_cx - anchor_cx) / anchor_w,
                         sh * tf.math.log(box_h / anchor_h), sw * tf.math.log(box_w / anchor_w)],
                        axis=-1)

    def decode(self, codes: tf.Tensor, anchors: tf.Tensor) -> tf.Tensor:
        """Targets (..., 4) back to pixel yxyx boxes (..., 4) around `anchors`."""
        anchor_h, anchor_w, anchor_cy, anchor_cx = _centre_form(anchors)
        sy, sx, sh, sw = self.scales
        dy, dx, dh, dw = tf.unstack(codes, axis=-1)
        # Clip the log-size deltas so that an untrained head cannot overflow exp().
        limit = float(np.log(1000.0 / 16))
        h = anchor_h * tf.exp(tf.minimum(dh / sh, limit))
        w = anchor_w * tf.exp(tf.minimum(dw / sw, limit))
        cy = anchor_cy + dy / sy * anchor_h
        cx = anchor_cx + dx / sx * anchor_w
        return tf.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)


def _centre_form(boxes: tf.Tensor):
    ymin, xmin, ymax, xmax = tf.unstack(tf.cast(boxes, tf.float32), axis=-1)
    return ymax - ymin, xmax - xmin, (ymin + ymax) / 2, (xmin + xmax) / 2
