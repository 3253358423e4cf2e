"""Writes `dummy_data/`: a tiny custom person-search dataset in the COCO-style layout.

Run from the repository root:  python -m tfds_builders.coco_person_search.make_dummy_data

`TRAIN` and `TEST` are the intended ground truth (each annotation states the person id and
ignore flag it must end up with, or that it is dropped); `EXPECTED_DERIVED_QUERIES` are the
annotation ids that must become queries, in order. test.json lists no `queries`, so the builder
derives them; the tests write variants with listed queries and with every validation error.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

import numpy as np
from PIL import Image

DUMMY_DIR = pathlib.Path(__file__).parent / 'dummy_data'


@dataclasses.dataclass(frozen=True)
class Ann:
    """An annotation as written (`fields` beyond id/image_id/bbox) and its expected outcome."""
    ann_id: int
    bbox: tuple[float, float, float, float]  # x, y, w, h pixels
    fields: dict[str, Any]
    person_id: int = -1  # expected
    ignore: bool = False  # expected
    kept: bool = True  # False: not a person category, dropped

    def box_xyxy(self) -> tuple[float, float, float, float]:
        x, y, w, h = self.bbox
        return (x, y, x + w, y + h)


@dataclasses.dataclass(frozen=True)
class DummyImage:
    """An image as written; `camera` None = no camera_id key (expected -1)."""
    image_id: int
    file_name: str
    width: int
    height: int
    camera: int | None
    anns: tuple[Ann, ...] = ()
    write_size: bool = True  # write width/height keys

    @property
    def camera_id(self) -> int:
        return -1 if self.camera is None else self.camera


TRAIN = (
    DummyImage(1, 'train/a.jpg', 64, 48, 1, (
        Ann(1, (2, 3, 10, 20), {'person_id': 0, 'category_id': 1}, person_id=0),
        Ann(2, (20, 5, 10, 20), {'person_id': -1, 'category_id': 1}),
        Ann(3, (40, 10, 8, 16), {}),  # no person_id, no category_id: a person without identity
        Ann(4, (50, 30, 12, 18), {'iscrowd': 1, 'category_id': 1}, ignore=True),
    )),
    DummyImage(2, 'train/b.jpg', 64, 48, None, (
        Ann(5, (5, 5, 10, 20.5), {'person_id': 0, 'category_id': 1}, person_id=0),
        # An ignore region with an identity: the identity is not used (warning).
        Ann(6, (30, 5, 10, 20), {'person_id': 1, 'ignore': True, 'category_id': 1},
            ignore=True),
        Ann(7, (40, 30, 20, 10), {'category_id': 3}, kept=False),  # a car
    ), write_size=False),
    DummyImage(3, 'train/c.jpg', 64, 48, 2),  # no people
)
# JSON order (not id order) is the gallery's protocol order.
TEST = (
    DummyImage(10, 'test/cam1_0001.jpg', 64, 48, 1, (
        Ann(100, (1, 1, 10, 20), {'person_id': 5}, person_id=5),
        Ann(101, (20, 1, 10, 20), {'person_id': 6}, person_id=6),  # 6 elsewhere only as ignore
        Ann(102, (40, 1, 10, 20), {'person_id': 7}, person_id=7),  # 7 appears once
        Ann(103, (50, 20, 10, 20), {'person_id': None}),
    )),
    DummyImage(12, 'test/cam2_0002.jpg', 48, 64, 2, (
        Ann(120, (0, 0, 10, 20), {'person_id': 5}, person_id=5),
        Ann(121, (20, 30, 10, 20), {'person_id': 8}, person_id=8),
    )),
    DummyImage(11, 'test/cam2_0001.jpg', 48, 64, 2, (
        Ann(110, (5, 5, 10, 20), {'person_id': 5}, person_id=5),
        Ann(111, (25, 5, 10, 20), {'ignore': 1}, ignore=True),
    )),
    DummyImage(13, 'test/cam1_0002.jpg', 64, 48, 1, (
        Ann(130, (10, 10, 10, 20), {'person_id': 8, 'iscrowd': 0, 'ignore': 0}, person_id=8),
        Ann(131, (30, 10, 20, 20), {'person_id': -1, 'iscrowd': 1}, ignore=True),
        Ann(132, (50, 5, 10, 20), {'ignore': 1, 'person_id': 6}, ignore=True),
    )),
    DummyImage(14, 'test/empty.jpg', 64, 48, None),
)
EXPECTED_DERIVED_QUERIES = (100, 120, 121, 110, 130)
CATEGORIES = [{'id': 1, 'name': 'person'}, {'id': 3, 'name': 'car'}]


def to_json(images: tuple[DummyImage, ...], categories: list | None = None,
            queries: list[int] | None = None) -> dict[str, Any]:
    """The COCO-style JSON object of a split."""
    data: dict[str, Any] = {'images': [], 'annotations': []}
    for image in images:
        entry: dict[str, Any] = {'id': image.image_id, 'file_name': image.file_name}
        if image.write_size:
            entry.update(width=image.width, height=image.height)
        if image.camera is not None:
            entry['camera_id'] = image.camera
        data['images'].append(entry)
        for ann in image.anns:
            data['annotations'].append({'id': ann.ann_id, 'image_id': image.image_id,
                                        'bbox': list(ann.bbox), **ann.fields})
    if categories is not None:
        data['categories'] = categories
    if queries is not None:
        data['queries'] = queries
    return data


def write(root: pathlib.Path = DUMMY_DIR) -> None:
    """Writes images/ and annotations/{train,test}.json below `root` (the TFDS manual_dir)."""
    rng = np.random.default_rng(7)
    for image in TRAIN + TEST:
        path = root / 'images' / image.file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(image.height, image.width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path, format='JPEG', quality=50)
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    for name, data in (('train', to_json(TRAIN, CATEGORIES)), ('test', to_json(TEST))):
        (root / 'annotations' / f'{name}.json').write_text(json.dumps(data, indent=1) + '\n')


if __name__ == '__main__':
    write()
