"""Reads the files of the original PRW release (`PRW-v16.04.20`), without TFDS.

Formats as docs/datasets.md#prw-files describes them (`scipy.io.loadmat` with default arguments).
Every reader validates what it reads and fails with a `ValueError` naming the file, the field and
what was expected.

Box format: the release stores (x, y, w, h) in float pixels, which may be negative; readers return
them unchanged. `boxes_xyxy()` converts to x1, y1, x2, y2 = x, y, x + w, y + h without clipping
(the evaluation applies SeqNet's clip/int32 convention itself).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping, Sequence

from etils import epath
import numpy as np

from tfds_builders import release_files, schema

FRAMES_DIR = 'frames'
ANNOTATIONS_DIR = 'annotations'
FRAME_TRAIN = 'frame_train.mat'
FRAME_TEST = 'frame_test.mat'
ID_TRAIN = 'ID_train.mat'
ID_TEST = 'ID_test.mat'
QUERY_INFO = 'query_info.txt'
#: The variable name of an annotation file differs per frame; tried in this order.
ANNOTATION_KEYS = ('box_new', 'anno_file', 'anno_previous')
#: Raw id of boxes without an identity ("-2" in the paper).
UNLABELLED = -2


@dataclasses.dataclass(frozen=True)
class QueryInfo:
    """One line of `query_info.txt`.

    Attributes:
        person_id: raw PRW id.
        box_xywh: (4,) float64 x, y, w, h pixels.
        frame: frame name without '.jpg', e.g. 'c3s2_044587'.
    """
    person_id: int
    box_xywh: np.ndarray
    frame: str


def _variable(mat: Mapping[str, Any], keys: Sequence[str], path: epath.PathLike) -> np.ndarray:
    for key in keys:
        if key in mat:
            return mat[key]
    found = sorted(k for k in mat if not k.startswith('__'))
    raise ValueError(f'{path}: expected a variable named {" or ".join(map(repr, keys))}, '
                     f'found {found}')


def read_frame_list(path: epath.PathLike, key: str) -> list[str]:
    """Reads `frame_train.mat` ('img_index_train') or `frame_test.mat` ('img_index_test'): a cell
    (N, 1) of frame names without '.jpg', returned in file order."""
    cell = np.asarray(_variable(release_files.load_mat(path), (key,), path))
    if cell.dtype != object:
        raise ValueError(f'{path}: {key}: expected a cell array of frame names, got dtype '
                         f'{cell.dtype} shape {cell.shape}')
    names = []
    for i, value in enumerate(cell.reshape(-1)):
        value = np.asarray(value).reshape(-1)
        if value.size != 1 or not isinstance(value[0], str):
            raise ValueError(f'{path}: {key}[{i}]: expected a frame name string, got {value!r}')
        name = str(value[0])
        names.append(name[:-4] if name.endswith('.jpg') else name)
    if len(set(names)) != len(names):
        raise ValueError(f'{path}: {key}: some frames are listed twice')
    return names


def read_ids(path: epath.PathLike, keys: Sequence[str]) -> np.ndarray:
    """Reads `ID_train.mat` (key 'ID_train') or `ID_test.mat` (key 'ID_test2'): (1, N) raw ids.

    Returns:
        (N,) int64 ids in file order.
    """
    ids = np.asarray(_variable(release_files.load_mat(path), keys, path))
    if not (np.issubdtype(ids.dtype, np.number) and np.all(np.isfinite(ids))
            and np.all(ids == np.round(ids)) and np.all(ids > 0)):
        raise ValueError(f'{path}: expected positive integer ids, got dtype {ids.dtype} '
                         f'values {ids.reshape(-1)[:10]}')
    ids = ids.reshape(-1).astype(np.int64)
    if len(np.unique(ids)) != len(ids):
        raise ValueError(f'{path}: some ids are listed twice')
    return ids


def annotation_path(root: epath.PathLike, frame: str) -> epath.Path:
    """`annotations/<frame>.jpg.mat` (note the double extension)."""
    return epath.Path(root) / ANNOTATIONS_DIR / f'{frame}.jpg.mat'


def read_annotation(path: epath.PathLike) -> np.ndarray:
    """Reads `annotations/<frame>.jpg.mat`: one variable ('box_new', 'anno_file' or
    'anno_previous'; otherwise the only non-'__' one), a (K, 5) array of [id, x, y, w, h].

    Returns:
        (K, 5) float64 rows [id, x, y, w, h].
    """
    mat = release_files.load_mat(path)
    keys = [k for k in ANNOTATION_KEYS if k in mat]
    if not keys:
        keys = [k for k in mat if not k.startswith('__')]
        if len(keys) != 1:
            raise ValueError(f'{path}: expected one variable named {" or ".join(ANNOTATION_KEYS)}'
                             f', found {sorted(keys)}')
    rows = np.asarray(mat[keys[0]])
    if rows.size == 0:
        return np.zeros((0, 5), np.float64)
    if rows.ndim != 2 or rows.shape[1] != 5 or not np.issubdtype(rows.dtype, np.number):
        raise ValueError(f'{path}: {keys[0]}: expected a (K, 5) numeric array of '
                         f'[id, x, y, w, h] rows, got shape {rows.shape} dtype {rows.dtype}')
    rows = rows.astype(np.float64)
    if not np.all(np.isfinite(rows)):
        raise ValueError(f'{path}: {keys[0]}: non-finite values')
    return rows


def person_ids(raw_ids: np.ndarray, where: str) -> np.ndarray:
    """Raw annotation ids to schema ids: -2 -> `schema.NO_IDENTITY`, others kept.

    Raises:
        ValueError: an id that is neither -2 nor a positive integer.
    """
    raw_ids = np.asarray(raw_ids, np.float64)
    bad = (raw_ids != np.round(raw_ids)) | ((raw_ids < 1) & (raw_ids != UNLABELLED))
    if np.any(bad):
        raise ValueError(f'{where}: expected person ids that are -2 or positive integers, got '
                         f'{raw_ids[bad].tolist()}')
    ids = raw_ids.astype(np.int64)
    return np.where(ids == UNLABELLED, schema.NO_IDENTITY, ids)


def boxes_xyxy(boxes_xywh: np.ndarray) -> np.ndarray:
    """(K, 4) float x, y, w, h -> (K, 4) float64 x1, y1, x2, y2 = x, y, x + w, y + h, unclipped."""
    return schema.xywh_to_xyxy(np.asarray(boxes_xywh, np.float64).reshape(-1, 4))


def read_query_info(path: epath.PathLike) -> list[QueryInfo]:
    """Reads `query_info.txt`: lines `pid x y w h frame` (CRLF line endings in the release)."""
    path = epath.Path(path)
    if not path.exists():
        raise FileNotFoundError(f'{path}: file not found')
    queries = []
    for number, line in enumerate(path.read_bytes().decode('utf-8').splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) != 6:
                raise ValueError(f'{len(fields)} fields')
            pid = float(fields[0])
            box = np.array([float(v) for v in fields[1:5]], np.float64)
            if pid != round(pid) or pid < 1 or not np.all(np.isfinite(box)):
                raise ValueError('bad values')
        except ValueError as e:
            raise ValueError(f'{path}: line {number}: expected "pid x y w h frame" (a positive '
                             f'integer id, four numbers, a frame name), got {line!r} ({e})'
                             ) from e
        frame = fields[5][:-4] if fields[5].endswith('.jpg') else fields[5]
        queries.append(QueryInfo(int(pid), box, frame))
    return queries


def camera_id(frame: str) -> int:
    """The camera of a frame named `c{cam}s{seq}_{frame:06d}`: the first `c\\d` (SeqNet)."""
    match = re.search(r'c(\d)', frame)
    if not match:
        raise ValueError(f'frame name {frame!r}: expected c<camera>s<sequence>_<frame>')
    return int(match.group(1))
