"""Reads and validates the COCO-style person-search JSON files of `coco_person_search`.

One JSON file per split (`annotations/train.json`, `annotations/test.json`):

    {
      "images": [{"id": 1, "file_name": "cam1/000001.jpg",     # relative to images/
                  "width": 1920, "height": 1080,              # optional, checked if given
                  "camera_id": 1}],                           # optional, else -1
      "annotations": [{"id": 10, "image_id": 1,
                       "bbox": [x, y, w, h],                  # pixels, COCO xywh
                       "person_id": 7,                        # optional; absent/null/-1: none
                       "iscrowd": 0, "ignore": 0,             # optional; either set: ignore region
                       "category_id": 1}],                    # optional, see below
      "categories": [{"id": 1, "name": "person"}],            # optional
      "queries": [10]                                         # optional, test.json only
    }

- With `categories`, only annotations of the category named "person" are read (others are
  dropped and counted); without it every annotation is a person.
- Ignore regions (`iscrowd` or `ignore` true) carry no identity.
- `queries` lists annotation ids of the test queries, in protocol order; without it (or with an
  empty list) the queries are derived (see `examples.py`).
- Boxes must lie inside the image (1 pixel tolerance) and have positive width and height: a box
  outside the image usually means x2, y2 were written where COCO expects w, h.
Every error names the JSON file and the entry (list position and id) and the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from absl import logging
from etils import epath

from tfds_builders import release_files, schema

IMAGE_DIR = 'images'
ANNOTATION_DIR = 'annotations'
BOX_TOLERANCE = 1.0  # pixels a box may leave the image by (rounding in conversions)


@dataclasses.dataclass(frozen=True)
class Person:
    """One annotation: box (x1, y1, x2, y2 pixels, from COCO x, y, w, h), identity, ignore flag."""
    annotation_id: int
    box_xyxy: tuple[float, float, float, float]
    person_id: int
    ignore: bool


@dataclasses.dataclass
class ImageRecord:
    """One image of a split with its people, in JSON order."""
    image_id: int
    file_name: str
    path: epath.Path
    width: int
    height: int
    camera_id: int
    people: list[Person] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class SplitAnnotations:
    """A parsed JSON file: images in file order, and the listed query annotation ids (or None)."""
    json_path: epath.Path
    images: list[ImageRecord]
    queries: list[int] | None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require(entry: Any, keys: tuple[str, ...], where: str) -> None:
    if not isinstance(entry, dict):
        raise ValueError(f'{where}: expected a JSON object, got {type(entry).__name__}')
    missing = [k for k in keys if k not in entry]
    if missing:
        raise ValueError(f'{where}: missing required key(s) {missing}')


def _int_field(entry: dict, key: str, where: str, default: int | None = None) -> int:
    value = entry.get(key, default)
    if not _is_int(value):
        raise ValueError(f'{where}: "{key}" = {value!r}, expected an integer')
    return value


def _flag(entry: dict, key: str, where: str) -> bool:
    value = entry.get(key, 0)
    if value not in (0, 1):
        raise ValueError(f'{where}: "{key}" = {value!r}, expected 0, 1, false or true')
    return bool(value)


def _read_images(entries: Any, json_path: epath.Path,
                 image_root: epath.Path) -> dict[int, ImageRecord]:
    if not isinstance(entries, list):
        raise ValueError(f'{json_path}: "images" must be a list of objects')
    images: dict[int, ImageRecord] = {}
    names: dict[str, int] = {}
    for position, entry in enumerate(entries):
        where = f'{json_path}: images[{position}]'
        _require(entry, ('id', 'file_name'), where)
        image_id = _int_field(entry, 'id', where)
        where = f'{where} (id {image_id})'
        file_name = entry['file_name']
        if (not isinstance(file_name, str) or not file_name or file_name.startswith('/')
                or '..' in file_name.split('/') or '\\' in file_name):
            raise ValueError(f'{where}: "file_name" = {file_name!r}, expected a path relative to '
                             f'{image_root} using "/"')
        if image_id in images:
            raise ValueError(f'{where}: duplicate image id {image_id} (also images of '
                             f'{images[image_id].file_name})')
        if file_name in names:
            raise ValueError(f'{where}: duplicate file_name {file_name} (also image id '
                             f'{names[file_name]})')
        path = image_root / file_name
        if not path.is_file():
            raise FileNotFoundError(f'{where}: image file {path} does not exist')
        height, width = release_files.image_size(path)
        for key, actual in (('width', width), ('height', height)):
            if key in entry and entry[key] != actual:
                raise ValueError(f'{where}: "{key}" = {entry[key]!r} but {path} is '
                                 f'{width}x{height}')
        camera = _int_field(entry, 'camera_id', where, default=schema.UNKNOWN_CAMERA)
        images[image_id] = ImageRecord(image_id, file_name, path, width, height, camera)
        names[file_name] = image_id
    return images


def _person_category_ids(data: dict, json_path: epath.Path) -> set[int] | None:
    """Ids of the category named "person", or None when the file has no `categories`."""
    if 'categories' not in data:
        return None
    categories = data['categories']
    if not isinstance(categories, list):
        raise ValueError(f'{json_path}: "categories" must be a list of objects')
    ids = set()
    for position, entry in enumerate(categories):
        where = f'{json_path}: categories[{position}]'
        _require(entry, ('id', 'name'), where)
        if str(entry['name']).lower() == 'person':
            ids.add(_int_field(entry, 'id', where))
    if not ids:
        raise ValueError(f'{json_path}: "categories" has no category named "person"')
    return ids


def _read_box(entry: dict, where: str, image: ImageRecord) -> tuple[float, float, float, float]:
    bbox = entry['bbox']
    if (not isinstance(bbox, list) or len(bbox) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)
            or not all(math.isfinite(v) for v in bbox)):
        raise ValueError(f'{where}: "bbox" = {bbox!r}, expected [x, y, width, height] numbers')
    x1, y1, x2, y2 = (float(v) for v in schema.xywh_to_xyxy(bbox))
    if bbox[2] <= 0 or bbox[3] <= 0:
        raise ValueError(f'{where}: "bbox" = {bbox}, width and height must be positive')
    if (x1 < -BOX_TOLERANCE or y1 < -BOX_TOLERANCE or x2 > image.width + BOX_TOLERANCE
            or y2 > image.height + BOX_TOLERANCE):
        raise ValueError(f'{where}: "bbox" [x, y, w, h] = {bbox} leaves the image '
                         f'{image.file_name} ({image.width}x{image.height}); COCO boxes are '
                         f'x, y, width, height (not x2, y2), clipped to the image')
    return x1, y1, x2, y2


def read_split(json_path: epath.PathLike, image_root: epath.PathLike,
               allow_queries: bool) -> SplitAnnotations:
    """Reads and validates one split's JSON file (format in the module docstring).

    Args:
        json_path: `annotations/<split>.json`.
        image_root: the folder `file_name`s are relative to.
        allow_queries: whether a `queries` list may appear (test.json only).

    Raises:
        FileNotFoundError: the JSON or an image file is missing.
        ValueError: invalid JSON, a missing required key, a wrong type, a duplicate image id,
            file name or annotation id, an unknown image id, a box outside its image.
    """
    json_path, image_root = epath.Path(json_path), epath.Path(image_root)
    if not json_path.exists():
        raise FileNotFoundError(f'{json_path}: missing')
    try:
        data = json.loads(json_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f'{json_path}: not valid JSON: {error}') from error
    _require(data, ('images', 'annotations'), str(json_path))
    images = _read_images(data['images'], json_path, image_root)
    person_categories = _person_category_ids(data, json_path)
    if not isinstance(data['annotations'], list):
        raise ValueError(f'{json_path}: "annotations" must be a list of objects')
    seen: dict[int, int] = {}
    other_categories = 0
    for position, entry in enumerate(data['annotations']):
        where = f'{json_path}: annotations[{position}]'
        _require(entry, ('id', 'image_id', 'bbox'), where)
        annotation_id = _int_field(entry, 'id', where)
        where = f'{where} (id {annotation_id})'
        if annotation_id in seen:
            raise ValueError(f'{where}: duplicate annotation id (also annotations['
                             f'{seen[annotation_id]}])')
        seen[annotation_id] = position
        image_id = _int_field(entry, 'image_id', where)
        if image_id not in images:
            raise ValueError(f'{where}: unknown image_id {image_id} (not in "images")')
        if person_categories is not None and 'category_id' in entry:
            if _int_field(entry, 'category_id', where) not in person_categories:
                other_categories += 1
                continue
        image = images[image_id]
        box = _read_box(entry, where, image)
        ignore = _flag(entry, 'iscrowd', where) or _flag(entry, 'ignore', where)
        person_id = entry.get('person_id')
        person_id = schema.NO_IDENTITY if person_id is None else person_id
        if not _is_int(person_id) or person_id < schema.NO_IDENTITY:
            raise ValueError(f'{where}: "person_id" = {entry.get("person_id")!r}, expected an '
                             f'integer >= 0, or -1 / null / absent for no identity')
        if ignore and person_id != schema.NO_IDENTITY:
            logging.warning('%s: ignore region with person_id %d; ignore regions carry no '
                            'identity, so the person_id is not used', where, person_id)
            person_id = schema.NO_IDENTITY
        image.people.append(Person(annotation_id, box, person_id, ignore))
    if other_categories:
        logging.info('%s: %d annotations of non-person categories skipped', json_path,
                     other_categories)
    queries = data.get('queries')
    if queries is not None:
        if not allow_queries:
            raise ValueError(f'{json_path}: "queries" is only read from the test split\'s JSON')
        if not isinstance(queries, list) or not all(_is_int(q) for q in queries):
            raise ValueError(f'{json_path}: "queries" must be a list of annotation ids '
                             f'(integers)')
    return SplitAnnotations(json_path, list(images.values()), queries or None)
