"""Reads the WIDER Pedestrian 2019 release (docs/datasets.md#wider-pedestrian-2019), apart from
TFDS so it can be tested.

Files, below the release root:
- `Annotations/<split>_list.txt`: image names, one per line (first token). Every listed image is
  an example; images absent from `<split>_bbox.txt` are images without pedestrians.
- `Annotations/<split>_bbox.txt` / `<split>_ignore.txt`: `<image_name> x y w h [x y w h ...]`,
  whitespace-separated, boxes as (left, top, width, height) pixels, no class column (2019 format:
  groups of 4, never 5). Pedestrian boxes and ignore regions respectively.
- images: train in `sur_train/` and `ad_train/ad_0{1,2,3}/` (found by name anywhere below those),
  val in `val_data/`, test (optional, [U]) in the first of `TEST_IMAGE_FOLDERS` that exists.

Checks: a line that does not parse, a box with negative size, a box entirely outside its image or
an annotated image that is not listed fails with file and line. Corrupt JPEGs (the release's
`sur03954.jpg`, "Premature end of JPEG") are skipped with a warning and counted. Boxes partly
outside the image are kept (`objects/box` as annotated, `objects/bbox` clipped) and counted;
boxes of zero width or height are dropped and counted.
"""

from __future__ import annotations

import dataclasses
import io
from typing import Any, Iterator

import numpy as np
from absl import logging
from etils import epath
from PIL import Image

from tfds_builders import schema

ANNOTATIONS = 'Annotations'
TRAIN_IMAGE_FOLDERS = ('sur_train', 'ad_train')
VAL_IMAGE_FOLDERS = ('val_data',)
TEST_IMAGE_FOLDERS = ('test_data', 'test_images', 'test')
_JPEG_SOI = b'\xff\xd8'
_JPEG_EOI = b'\xff\xd9'


class CorruptImageError(ValueError):
    """An image file that cannot be decoded (truncated, not a JPEG, ...)."""


@dataclasses.dataclass(frozen=True)
class BoxLine:
    """The boxes of one annotation line: (K, 4) x, y, w, h pixels, and where they were read."""
    boxes_xywh: np.ndarray
    where: str


@dataclasses.dataclass
class SplitStats:
    """What reading one split found (logged once the split is done)."""
    listed: int = 0
    corrupt: list[str] = dataclasses.field(default_factory=list)
    boxes_leaving_image: int = 0
    zero_size_dropped: int = 0


def list_path(root: epath.Path, split: str, kind: str) -> epath.Path:
    """`Annotations/<split>_<kind>.txt`, kind in {'list', 'bbox', 'ignore'}."""
    return root / ANNOTATIONS / f'{split}_{kind}.txt'


def read_list(path: epath.PathLike) -> list[str]:
    """Image names of a `*_list.txt` (first token of each non-empty line), in file order.

    Raises:
        ValueError: a name listed twice (naming both lines).
    """
    path = epath.Path(path)
    names: dict[str, int] = {}
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if tokens[0] in names:
            raise ValueError(f'{path}:{line_number}: {tokens[0]} is already listed on line '
                             f'{names[tokens[0]]}')
        names[tokens[0]] = line_number
    return list(names)


def read_boxes(path: epath.PathLike) -> dict[str, BoxLine]:
    """Parses a `*_bbox.txt` or `*_ignore.txt`: image name -> its (K, 4) x, y, w, h boxes.

    Raises:
        ValueError: naming file and line, for numbers that are not groups of 4, a token that is
            not a finite number, a negative width or height, or an image on two lines.
    """
    path = epath.Path(path)
    result: dict[str, BoxLine] = {}
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        where = f'{path}:{line_number}'
        name, numbers = tokens[0], tokens[1:]
        if len(numbers) % 4:
            raise ValueError(f'{where}: {name} has {len(numbers)} numbers, expected groups of 4 '
                             f'(x y w h; the 2019 release has no class column)')
        try:
            values = np.asarray([float(t) for t in numbers], np.float64).reshape(-1, 4)
        except ValueError as error:
            raise ValueError(f'{where}: {name}: expected numbers x y w h, got {numbers}'
                             ) from error
        if not np.all(np.isfinite(values)):
            raise ValueError(f'{where}: {name}: non-finite coordinate in {numbers}')
        negative = (values[:, 2] < 0) | (values[:, 3] < 0)
        if np.any(negative):
            raise ValueError(f'{where}: {name}: negative width or height (x y w h) '
                             f'{values[negative].tolist()}')
        if name in result:
            raise ValueError(f'{where}: {name} already has a line ({result[name].where})')
        result[name] = BoxLine(values, where)
    return result


def image_size(path: epath.PathLike) -> tuple[int, int]:
    """(width, height) of a JPEG from its header, after checking the file is complete.

    A file that ends with the EOI marker (trailing zero padding allowed) is taken as complete
    without decoding; any other file is decoded fully by PIL, which fails on a truncated one.

    Raises:
        CorruptImageError: not a JPEG, or PIL cannot decode it.
    """
    path = epath.Path(path)
    data = path.read_bytes()
    if not data.startswith(_JPEG_SOI):
        raise CorruptImageError(f'{path}: not a JPEG (no start-of-image marker)')
    try:
        with Image.open(io.BytesIO(data)) as image:
            if not data.rstrip(b'\x00').endswith(_JPEG_EOI):
                image.load()  # Raises OSError "image file is truncated" on a cut-off file.
            return image.size
    except (OSError, SyntaxError, ValueError) as error:
        raise CorruptImageError(f'{path}: cannot decode JPEG: {error}') from error


def _files_below(folder: epath.Path, depth: int = 2) -> Iterator[epath.Path]:
    for child in folder.iterdir():
        if child.is_dir():
            if depth > 0:
                yield from _files_below(child, depth - 1)
        else:
            yield child


def index_images(root: epath.Path, folders: tuple[str, ...]) -> dict[str, epath.Path]:
    """File name -> path of every file below `root/<folder>` (two levels deep: ad_train/ad_01).

    Raises:
        ValueError: the same file name in two places (which one is meant is unclear).
    """
    index: dict[str, epath.Path] = {}
    for folder in folders:
        if not (root / folder).is_dir():
            continue
        for path in _files_below(root / folder):
            if path.name in index:
                raise ValueError(f'{path.name} is both {index[path.name]} and {path}')
            index[path.name] = path
    return index


def locate_image(name: str, root: epath.Path, index: dict[str, epath.Path],
                 where: str) -> epath.Path:
    """Finds a listed image: `root/name`, else by file name (with `.jpg` added if it has none)."""
    if (root / name).is_file():
        return root / name
    base = name.rsplit('/', 1)[-1]
    for candidate in (base, base + '.jpg'):
        if candidate in index:
            return index[candidate]
    raise FileNotFoundError(f'{where}: image {name} not found in {root} (searched its image '
                            f'folders and {len(index)} files below them)')


def split_examples(root: epath.PathLike, split: str, image_folders: tuple[str, ...],
                   stats: SplitStats | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yields `(key, example)` in the shared schema for every usable image of a split.

    Examples come in `<split>_list.txt` order; `protocol_index` counts the yielded (non-corrupt)
    images contiguously. Keys and `image/filename` are the listed names. A missing
    `<split>_bbox.txt` / `<split>_ignore.txt` means no boxes (the test split).

    Args:
        root: the release root (holding `Annotations/`).
        split: 'train', 'val' or 'test'.
        image_folders: folders below `root` that hold the split's images.
        stats: filled in while reading, if given.
    """
    root = epath.Path(root)
    stats = stats if stats is not None else SplitStats()
    list_file = list_path(root, split, 'list')
    names = read_list(list_file)
    annotations = {}
    for kind in ('bbox', 'ignore'):
        path = list_path(root, split, kind)
        annotations[kind] = read_boxes(path) if path.exists() else {}
        unlisted = sorted(set(annotations[kind]) - set(names))
        if unlisted:
            line = annotations[kind][unlisted[0]].where
            raise ValueError(f'{line}: {unlisted[0]} (and {len(unlisted) - 1} more) annotated but '
                             f'not listed in {list_file}')
    index = index_images(root, image_folders)
    stats.listed = len(names)
    protocol_index = 0
    for name in names:
        path = locate_image(name, root, index, f'{list_file} ({name})')
        try:
            width, height = image_size(path)
        except CorruptImageError as error:
            dropped = sum(len(annotations[kind][name].boxes_xywh) for kind in annotations
                          if name in annotations[kind])
            logging.warning('wider_pedestrian/%s: skipping corrupt image (%s); its %d boxes and '
                            'ignore regions are dropped', split, error, dropped)
            stats.corrupt.append(name)
            continue
        boxes, ignore = [], []
        for kind in ('bbox', 'ignore'):
            line = annotations[kind].get(name)
            if line is None:
                continue
            keep = (line.boxes_xywh[:, 2] > 0) & (line.boxes_xywh[:, 3] > 0)
            stats.zero_size_dropped += int(np.sum(~keep))
            xyxy = schema.xywh_to_xyxy(line.boxes_xywh[keep])
            _check_inside(xyxy, width, height, f'{line.where}: {name} ({width}x{height})')
            stats.boxes_leaving_image += int(np.sum(
                (xyxy[:, 0] < 0) | (xyxy[:, 1] < 0) | (xyxy[:, 2] > width) |
                (xyxy[:, 3] > height)))
            boxes.append(xyxy)
            ignore += [kind == 'ignore'] * len(xyxy)
        boxes_xyxy = np.concatenate(boxes) if boxes else np.zeros((0, 4))
        yield name, {
            'image': path,
            'image/filename': name,
            'protocol_index': protocol_index,
            'camera_id': schema.UNKNOWN_CAMERA,
            'objects': schema.encode_objects(boxes_xyxy, [schema.NO_IDENTITY] * len(ignore),
                                             ignore, height, width, where=name),
            'query': schema.empty_query(),
        }
        protocol_index += 1
    logging.info('wider_pedestrian/%s: %d listed images, %d corrupt skipped %s, %d boxes leaving '
                 'the image (kept, bbox clipped), %d zero-size boxes dropped', split,
                 stats.listed, len(stats.corrupt), stats.corrupt, stats.boxes_leaving_image,
                 stats.zero_size_dropped)


def _check_inside(boxes_xyxy: np.ndarray, width: int, height: int, where: str) -> None:
    """Fails on boxes that do not overlap the image at all (a sign of a misread format)."""
    outside = ((boxes_xyxy[:, 0] >= width) | (boxes_xyxy[:, 1] >= height) |
               (boxes_xyxy[:, 2] <= 0) | (boxes_xyxy[:, 3] <= 0))
    if np.any(outside):
        raise ValueError(f'{where}: boxes entirely outside the image (x1, y1, x2, y2): '
                         f'{boxes_xyxy[outside].tolist()}')
