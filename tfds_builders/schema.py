"""The one example schema that every ps_tf dataset builder writes.

Synthetic, CUHK-SYSU, PRW, MOT17Det, WIDER Pedestrian and custom COCO-style data all produce the
same features, so every tf.data pipeline, training stage and evaluation reads them alike.

One example = one scene image:

- `image`: uint8 (H, W, 3), stored as JPEG; the full scene.
- `image/filename`: the file name as the release names it; the key that predictions files and
  protocols use.
- `protocol_index`: int32, the example's position in the split's original (protocol) order;
  TFDS shuffles examples on disk, so sort by it.
- `camera_id`: int32, the camera, or -1 (`UNKNOWN_CAMERA`).
- `objects/bbox`: (K, 4) float32 `BBoxFeature`: ymin, xmin, ymax, xmax normalised to [0, 1] and
  clipped to the image.
- `objects/box`: (K, 4) float64 x1, y1, x2, y2 in original pixels exactly as annotated (may leave
  the image).
- `objects/person_id`: (K,) int64 identity, or -1 (`NO_IDENTITY`).
- `objects/ignore`: (K,) bool, an ignore region (crowd, MOT classes 2/7/8/12): no detection loss.
- `query/...`: only meaningful in `query` splits (below).

Query splits hold one example per query; `protocol_index` is the query's index in the protocol
order (CUHK-SYSU: TestG order; PRW: query_info.txt order), the order of `query_embeddings` in a
predictions file. The image fields describe the query's scene image.

- `query/box`: (4,) float64 query box, x1, y1, x2, y2 original pixels; `query/bbox` the same
  normalised and clipped.
- `query/person_id`: int64, the query's identity.
- `query/gallery_sizes`: (S,) int32 protocol gallery sizes (CUHK-SYSU style: 50, 100, ...);
  empty = the gallery is the whole gallery split (PRW style).
- `query/gallery_lengths`: (S,) int32, the number of entries of each list (normally = size).
- `query/gallery_image_index`: (sum of lengths,) int32, the entries of every list concatenated in
  `gallery_sizes` order, each the gallery split's `protocol_index` of the image.
- `query/gallery_positive_entry`: (P,) int32 positions in `gallery_image_index` of the entries
  that contain the query person; `query/gallery_positive_box`: (P, 4) float64 their boxes, x1,
  y1, x2, y2 original pixels.

Gallery lists keep the protocol's entries exactly (duplicates and the query's own image included);
they are stored as indices, not names, because CUHK-SYSU has 2,900 queries x 7,650 entries. Use
`query_galleries()` to decode them. In non-query splits `query` holds `empty_query()`.

Box formats: `objects/bbox` and `query/bbox` are TFDS `BBoxFeature`s (normalised ymin, xmin, ymax,
xmax), what tf.data pipelines and models use; `objects/box`, `query/box` and the gallery boxes are
the evaluation boundary format (original pixels x1, y1, x2, y2, continuous coordinates, no +1).
`pixel_boxes_to_bbox()` and `bbox_to_pixel_boxes()` convert between them.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds

NO_IDENTITY = -1
UNKNOWN_CAMERA = -1
NOT_A_QUERY = -1


def features() -> tfds.features.FeaturesDict:
    """Returns the shared `FeaturesDict` (see the module docstring)."""
    return tfds.features.FeaturesDict({
        'image': tfds.features.Image(shape=(None, None, 3), encoding_format='jpeg'),
        'image/filename': tfds.features.Text(),
        'protocol_index': np.int32,
        'camera_id': np.int32,
        # Per-object fields as (K, ...) tensors rather than a Sequence: TFDS stores a float64
        # Sequence as float32, and the pixel boxes must keep the annotation's exact values.
        'objects': {
            'bbox': tfds.features.Sequence(tfds.features.BBoxFeature()),
            'box': _float64_tensor((None, 4)),
            'person_id': tfds.features.Tensor(shape=(None,), dtype=np.int64),
            'ignore': tfds.features.Tensor(shape=(None,), dtype=np.bool_),
        },
        'query': {
            'box': _float64_tensor((4,)),
            'bbox': tfds.features.BBoxFeature(),
            'person_id': np.int64,
            'gallery_sizes': tfds.features.Tensor(shape=(None,), dtype=np.int32),
            'gallery_lengths': tfds.features.Tensor(shape=(None,), dtype=np.int32),
            'gallery_image_index': tfds.features.Tensor(shape=(None,), dtype=np.int32),
            'gallery_positive_entry': tfds.features.Tensor(shape=(None,), dtype=np.int32),
            'gallery_positive_box': _float64_tensor((None, 4)),
        },
    })


def _float64_tensor(shape: tuple) -> tfds.features.Tensor:
    """A float64 tensor stored as raw bytes: TFDS writes plain float64 features as float32."""
    return tfds.features.Tensor(shape=shape, dtype=np.float64,
                                encoding=tfds.features.Encoding.BYTES)


# ----------------------------------------------------------------------------- box formats


def pixel_boxes_to_bbox(boxes_xyxy: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixel boxes to TFDS bboxes.

    Args:
        boxes_xyxy: (K, 4) or (4,) x1, y1, x2, y2 in original pixels; may leave the image.
        height, width: image size in pixels.

    Returns:
        Same leading shape, float32 ymin, xmin, ymax, xmax normalised to [0, 1] and clipped to the
        image (BBoxFeature refuses values outside [0, 1]).
    """
    boxes = np.asarray(boxes_xyxy, np.float64)
    x1, y1, x2, y2 = np.moveaxis(boxes, -1, 0)
    ymin = np.clip(y1 / height, 0.0, 1.0)
    xmin = np.clip(x1 / width, 0.0, 1.0)
    ymax = np.clip(y2 / height, 0.0, 1.0)
    xmax = np.clip(x2 / width, 0.0, 1.0)
    # Keep min <= max after float32 rounding, which BBoxFeature checks.
    ymax, xmax = np.maximum(ymax, ymin), np.maximum(xmax, xmin)
    return np.stack([ymin, xmin, ymax, xmax], axis=-1).astype(np.float32)


def bbox_to_pixel_boxes(bbox: np.ndarray, height: int, width: int) -> np.ndarray:
    """TFDS bboxes (normalised ymin, xmin, ymax, xmax) to pixel x1, y1, x2, y2 (float64).

    The result is the box clipped to the image; `objects/box` keeps the unclipped annotation.
    """
    bbox = np.asarray(bbox, np.float64)
    ymin, xmin, ymax, xmax = np.moveaxis(bbox, -1, 0)
    return np.stack([xmin * width, ymin * height, xmax * width, ymax * height], axis=-1)


def xywh_to_xyxy(boxes_xywh: np.ndarray) -> np.ndarray:
    """(x, y, w, h) to (x1, y1, x2, y2) as every person-search loader does: x2 = x + w, no -1.

    Integer inputs are widened to int64 first: CUHK-SYSU stores boxes as uint8/uint16, where
    `x + w` would wrap around.
    """
    boxes = np.asarray(boxes_xywh)
    if np.issubdtype(boxes.dtype, np.integer):
        boxes = boxes.astype(np.int64)
    boxes = boxes.astype(np.float64)
    return np.concatenate([boxes[..., :2], boxes[..., :2] + boxes[..., 2:]], axis=-1)


# ----------------------------------------------------------------------------- encoding


def encode_objects(boxes_xyxy: np.ndarray,
                   person_ids: Sequence[int],
                   ignore: Sequence[bool] | None,
                   height: int,
                   width: int,
                   where: str = '') -> dict[str, np.ndarray]:
    """Builds the `objects` feature of one image, validating it.

    Args:
        boxes_xyxy: (K, 4) x1, y1, x2, y2 original pixels.
        person_ids: (K,) identities, `NO_IDENTITY` for people without one.
        ignore: (K,) ignore-region flags, or None for all False.
        height, width: image size in pixels.
        where: names the image in error messages (e.g. the file name).

    Raises:
        ValueError: shapes disagree, a coordinate is not finite, or x2 < x1 / y2 < y1.
    """
    boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    person_ids = np.asarray(person_ids, np.int64).reshape(-1)
    ignore = (np.zeros(len(boxes), bool)
              if ignore is None else np.asarray(ignore, bool).reshape(-1))
    if not len(boxes) == len(person_ids) == len(ignore):
        raise ValueError(f'{where}: {len(boxes)} boxes but {len(person_ids)} person ids and '
                         f'{len(ignore)} ignore flags')
    if not np.all(np.isfinite(boxes)):
        raise ValueError(f'{where}: non-finite box coordinates {boxes[~np.isfinite(boxes)]}')
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if np.any(bad):
        raise ValueError(f'{where}: boxes with x2 < x1 or y2 < y1 (x1, y1, x2, y2): '
                         f'{boxes[bad].tolist()}')
    return {
        'bbox': pixel_boxes_to_bbox(boxes, height, width).reshape(-1, 4),
        'box': boxes,
        'person_id': person_ids,
        'ignore': ignore,
    }


@dataclasses.dataclass(frozen=True)
class GalleryEntry:
    """One entry of a protocol gallery list.

    Attributes:
        image_index: the gallery split's `protocol_index` of the image.
        box: x1, y1, x2, y2 original pixels of the query person in that image, or None.
    """
    image_index: int
    box: tuple[float, float, float, float] | None = None


def empty_query() -> dict[str, np.ndarray]:
    """The `query` feature of an example that is not a query."""
    return {
        'box': np.zeros(4, np.float64),
        'bbox': np.zeros(4, np.float32),
        'person_id': np.int64(NO_IDENTITY),
        'gallery_sizes': np.zeros(0, np.int32),
        'gallery_lengths': np.zeros(0, np.int32),
        'gallery_image_index': np.zeros(0, np.int32),
        'gallery_positive_entry': np.zeros(0, np.int32),
        'gallery_positive_box': np.zeros((0, 4), np.float64),
    }


def encode_query(box_xyxy: Sequence[float],
                 person_id: int,
                 galleries: Mapping[int, Sequence[GalleryEntry]],
                 height: int,
                 width: int,
                 where: str = '') -> dict[str, np.ndarray]:
    """Builds the `query` feature.

    Args:
        box_xyxy: (4,) the query box, x1, y1, x2, y2 original pixels.
        person_id: the query's identity.
        galleries: gallery size -> its entries in protocol order. Empty for protocols whose
            gallery is the whole gallery split (PRW).
        height, width: size of the query's image.
        where: names the query in error messages.
    """
    box = np.asarray(box_xyxy, np.float64).reshape(4)
    if not np.all(np.isfinite(box)) or box[2] < box[0] or box[3] < box[1]:
        raise ValueError(f'{where}: invalid query box (x1, y1, x2, y2) {box.tolist()}')
    sizes, lengths, image_index, positive_entry, positive_box = [], [], [], [], []
    for size, entries in galleries.items():
        sizes.append(size)
        lengths.append(len(entries))
        for entry in entries:
            if entry.box is not None:
                positive_entry.append(len(image_index))
                positive_box.append(entry.box)
            image_index.append(entry.image_index)
    return {
        'box': box,
        'bbox': pixel_boxes_to_bbox(box, height, width),
        'person_id': np.int64(person_id),
        'gallery_sizes': np.asarray(sizes, np.int32),
        'gallery_lengths': np.asarray(lengths, np.int32),
        'gallery_image_index': np.asarray(image_index, np.int32),
        'gallery_positive_entry': np.asarray(positive_entry, np.int32),
        'gallery_positive_box': np.asarray(positive_box, np.float64).reshape(-1, 4),
    }


# ----------------------------------------------------------------------------- decoding


def query_galleries(query: Mapping[str, np.ndarray]) -> dict[int, list[GalleryEntry]]:
    """Decodes the gallery lists of one query (numpy `query` feature) into entries per size.

    Raises:
        ValueError: the stored list lengths do not add up to the number of entries.
    """
    sizes = [int(s) for s in np.asarray(query['gallery_sizes']).reshape(-1)]
    lengths = [int(n) for n in np.asarray(query['gallery_lengths']).reshape(-1)]
    image_index = np.asarray(query['gallery_image_index']).reshape(-1)
    if len(sizes) != len(lengths) or sum(lengths) != len(image_index):
        raise ValueError(f'query gallery lengths {lengths} (sizes {sizes}) do not add up to the '
                         f'{len(image_index)} stored entries')
    boxes: dict[int, tuple[float, ...]] = {
        int(p): tuple(float(v) for v in b)
        for p, b in zip(np.asarray(query['gallery_positive_entry']).reshape(-1),
                        np.asarray(query['gallery_positive_box']).reshape(-1, 4))
    }
    galleries, start = {}, 0
    for size, length in zip(sizes, lengths):
        galleries[size] = [GalleryEntry(int(image_index[p]), boxes.get(p))
                           for p in range(start, start + length)]
        start += length
    return galleries
