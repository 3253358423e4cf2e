"""CUHK-SYSU splits and identity labels from the parsed release files, SeqNet convention.

- Boxes with w <= 0 or h <= 0 are dropped (annotation errors); an image left without boxes stays in
  its split as an image without people.
- Train split = every `Images.mat` image not in `pool.mat`, sorted by name as strings (SeqNet's
  `sorted(set(all) - set(pool))`, so 's10.jpg' < 's2.jpg'). Gallery split = `pool.mat` order.
- Train identities: the i-th `Train.mat` identity gets person id i + 1 (1..5532).
- Test identities: the i-th `TestG50.mat` query gets person id `TEST_PID_OFFSET + i + 1`
  (10001..12900), on its query box and every positive gallery box. SeqNet numbers them 1..2900,
  which collides with the training ids; the offset keeps the two disjoint and readable (our id
  minus 10000 is SeqNet's).
- A protocol box labels the first box of its image that is exactly equal (all four integers); a
  later label overwrites an earlier one, as in SeqNet. Protocol boxes that match no box are
  counted and logged (SeqNet ignores them silently, OIM warns).
- Everything else is `schema.NO_IDENTITY` (SeqNet's 5555).

Box format: (x, y, w, h) int64 pixels throughout; conversion to x1, y1, x2, y2 happens in the
builder with `schema.xywh_to_xyxy`.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

from absl import logging
import numpy as np

from tfds_builders import schema
from tfds_builders.cuhk_sysu import release

#: Offset of the test person ids (see the module docstring).
TEST_PID_OFFSET = 10000


@dataclasses.dataclass
class LabelledImage:
    """One image with its valid boxes.

    Attributes:
        name: file name.
        boxes_xywh: (K, 4) int64 x, y, w, h pixels, w > 0 and h > 0.
        person_ids: (K,) int64, `schema.NO_IDENTITY` for unlabelled people.
    """
    name: str
    boxes_xywh: np.ndarray
    person_ids: np.ndarray


def test_person_id(query_index: int) -> int:
    """The person id of the `query_index`-th TestG query (0-based)."""
    return TEST_PID_OFFSET + query_index + 1


def valid_boxes(images: Sequence[release.SceneImage]) -> dict[str, np.ndarray]:
    """Drops boxes with w <= 0 or h <= 0 and logs how many.

    Returns:
        name -> (K, 4) int64 x, y, w, h, in `images` order.
    """
    kept, dropped, emptied = {}, 0, []
    for image in images:
        boxes = image.boxes_xywh
        ok = (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
        dropped += int(np.sum(~ok))
        kept[image.name] = boxes[ok]
        if boxes.size and not np.any(ok):
            emptied.append(image.name)
    if dropped:
        logging.info('cuhk_sysu: dropped %d boxes with w <= 0 or h <= 0 from %s.', dropped,
                     release.IMAGES_MAT)
    if emptied:
        logging.warning('cuhk_sysu: %d images have no valid box left and are kept as images '
                        'without people: %s', len(emptied), emptied[:20])
    return kept


def split_names(all_names: Sequence[str], pool: Sequence[str]) -> tuple[list[str], list[str]]:
    """Returns (train names sorted as strings, gallery names in pool order).

    Raises:
        ValueError: a pool image is not in `Images.mat`.
    """
    known = set(all_names)
    missing = [n for n in pool if n not in known]
    if missing:
        raise ValueError(f'{release.POOL_MAT}: {len(missing)} images are not in '
                         f'{release.IMAGES_MAT}: {missing[:10]}')
    return sorted(known - set(pool)), list(pool)


def train_labels(identities: Sequence[release.TrainIdentity]
                 ) -> Iterable[tuple[str, np.ndarray, int, str]]:
    """(image name, (4,) x, y, w, h, person id, where) for every `Train.mat` appearance."""
    for i, identity in enumerate(identities):
        for j, appearance in enumerate(identity.appearances):
            yield (appearance.image_name, appearance.box_xywh, i + 1,
                   f'{release.TRAIN_MAT}: Train[{i}].scene[{j}]')


def test_labels(protocol: release.Protocol, pool: Sequence[str]
                ) -> Iterable[tuple[str, np.ndarray, int, str]]:
    """(image name, (4,) x, y, w, h, person id, where) for every query box and positive gallery
    entry of `protocol` (TestG50 in the SeqNet convention)."""
    for i, query in enumerate(protocol.queries):
        where = f'TestG{protocol.gallery_size}.mat: query {i}'
        pid = test_person_id(i)
        yield query.image_name, query.box_xywh, pid, where
        for j, (image_index, box) in enumerate(protocol.gallery(i)):
            if box is not None:
                yield pool[image_index], box, pid, f'{where}, gallery entry {j}'


def label_images(names: Sequence[str], boxes: dict[str, np.ndarray],
                 labels: Iterable[tuple[str, np.ndarray, int, str]], split: str
                 ) -> list[LabelledImage]:
    """Assigns person ids by exact box matching (SeqNet's `set_box_pid`).

    Args:
        names: the split's images, in split order.
        boxes: name -> (K, 4) int64 x, y, w, h of the valid boxes.
        labels: (image name, (4,) int64 x, y, w, h, person id, where) in protocol order.
        split: names the split in log lines.

    Returns:
        The split's images in `names` order.
    """
    pids = {n: np.full(len(boxes[n]), schema.NO_IDENTITY, np.int64) for n in names}
    outside, unmatched, relabelled = [], [], 0
    for name, box, pid, where in labels:
        if name not in pids:
            outside.append(f'{where} ({name})')
            continue
        match = np.flatnonzero(np.all(boxes[name] == box, axis=1))
        if not match.size:
            unmatched.append(f'{where} ({name} {box.tolist()})')
            continue
        relabelled += pids[name][match[0]] not in (schema.NO_IDENTITY, pid)
        pids[name][match[0]] = pid
    if outside:
        logging.warning('cuhk_sysu/%s: %d labelled boxes are in images outside the split and were '
                        'ignored, e.g. %s', split, len(outside), outside[:5])
    if unmatched:
        logging.warning('cuhk_sysu/%s: %d labelled boxes match no valid box of %s exactly and '
                        'were ignored, e.g. %s', split, len(unmatched), release.IMAGES_MAT,
                        unmatched[:5])
    if relabelled:
        logging.warning('cuhk_sysu/%s: %d boxes were labelled twice with different ids; the last '
                        'label wins (SeqNet).', split, relabelled)
    return [LabelledImage(n, boxes[n], pids[n]) for n in names]
