"""Reads the `.mat` files of the original CUHK-SYSU release, without TFDS.

The nesting is the one `scipy.io.loadmat` (default arguments) returns for the release files
(docs/datasets.md#cuhk-sysu-mat-files). Every reader validates what it reads and fails with a
`ValueError` that names the file, the field and what was expected.

Box format: every box returned here is (x, y, w, h) in integer pixels, as the release stores it,
widened to int64. The release stores each box as uint8 or uint16, chosen per entry (MATLAB picks
uint8 when all four values are below 256), so `x + w` would wrap around without the widening.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from typing import Any, Mapping

from absl import logging
from etils import epath
import numpy as np

from tfds_builders import release_files

IMAGES_MAT = 'annotation/Images.mat'
POOL_MAT = 'annotation/pool.mat'
TRAIN_MAT = 'annotation/test/train_test/Train.mat'
PROTOCOL_DIR = 'annotation/test/train_test'
IMAGE_DIR = 'Image/SSM'
#: Gallery sizes of the official protocol files `TestG{N}.mat`.
STANDARD_GALLERY_SIZES = (50, 100, 500, 1000, 2000, 4000)
#: The protocol file that defines the test identities (SeqNet convention).
LABEL_GALLERY_SIZE = 50


@dataclasses.dataclass(frozen=True)
class SceneImage:
    """One entry of `Images.mat`.

    Attributes:
        name: file name, e.g. 's1.jpg'.
        boxes_xywh: (K, 4) int64 x, y, w, h pixels, every box of the file (invalid ones too).
    """
    name: str
    boxes_xywh: np.ndarray


@dataclasses.dataclass(frozen=True)
class Appearance:
    """One occurrence of a person in a scene image: image name and (4,) int64 x, y, w, h."""
    image_name: str
    box_xywh: np.ndarray


@dataclasses.dataclass(frozen=True)
class TrainIdentity:
    """One entry of `Train.mat`: the identity name (e.g. 'p1234') and its appearances."""
    name: str
    appearances: list[Appearance]


@dataclasses.dataclass(frozen=True)
class ProtocolQuery:
    """The `Query` record of one protocol entry.

    Attributes:
        image_name: the query's scene image.
        box_xywh: (4,) int64 x, y, w, h pixels.
        is_hard: the `ishard` flag.
        identity_name: `idname`, e.g. 'p10581' ('' when the field is absent).
    """
    image_name: str
    box_xywh: np.ndarray
    is_hard: bool
    identity_name: str


@dataclasses.dataclass(frozen=True)
class Protocol:
    """One `TestG{N}.mat` file in compact form (TestG4000 alone has 11.6 M gallery entries).

    The gallery of query i is the entries `entry_offsets[i]:entry_offsets[i + 1]`, in file order
    (duplicates and the query's own image kept).

    Attributes:
        gallery_size: N of `TestG{N}.mat`.
        queries: the queries in file order.
        entry_offsets: (Q + 1,) int64.
        entry_image_index: (E,) int32 position in `pool.mat` of each entry's image.
        positive_entry: (P,) int64 global positions of the positive entries, ascending.
        positive_box_xywh: (P, 4) int64 x, y, w, h of the query person in those entries.
    """
    gallery_size: int
    queries: list[ProtocolQuery]
    entry_offsets: np.ndarray
    entry_image_index: np.ndarray
    positive_entry: np.ndarray
    positive_box_xywh: np.ndarray

    def gallery(self, query_index: int) -> list[tuple[int, np.ndarray | None]]:
        """Query `query_index`'s entries as (pool index, (4,) int64 x, y, w, h or None)."""
        start, stop = self.entry_offsets[query_index], self.entry_offsets[query_index + 1]
        first, last = np.searchsorted(self.positive_entry, [start, stop])
        boxes = {int(e): b for e, b in zip(self.positive_entry[first:last],
                                           self.positive_box_xywh[first:last])}
        return [(int(self.entry_image_index[e]), boxes.get(e)) for e in range(start, stop)]


# ----------------------------------------------------------------------------- low-level helpers


def mat_variable(mat: Mapping[str, Any], key: str, path: epath.PathLike) -> np.ndarray:
    """`mat[key]`, or a `ValueError` naming the file and the keys it has."""
    if key not in mat:
        keys = sorted(k for k in mat if not k.startswith('__'))
        raise ValueError(f'{path}: expected the variable {key!r}, found {keys}')
    return mat[key]


def records(value: Any, fields: tuple[str, ...], where: str) -> np.ndarray:
    """A MATLAB struct array as a flat array of records, checking it has `fields`."""
    value = np.asarray(value)
    names = value.dtype.names or ()
    missing = [f for f in fields if f not in names]
    if missing:
        raise ValueError(f'{where}: expected a struct with fields {list(fields)}, got '
                         f'{list(names) if names else f"dtype {value.dtype}"}')
    return value.reshape(-1)


def mat_string(value: Any, where: str) -> str:
    """A MATLAB char array as loadmat returns it (`array(['s1.jpg'])`) as a `str`."""
    value = np.asarray(value).reshape(-1)
    if value.size != 1 or not isinstance(value[0], str):
        raise ValueError(f'{where}: expected a string (a 1-element char array), got '
                         f'{value!r}')
    return str(value[0])


def mat_box_xywh(value: Any, where: str, allow_empty: bool = False) -> np.ndarray | None:
    """A box `array([[x, y, w, h]], uint8|uint16|double)` as (4,) int64 x, y, w, h.

    Returns None for an empty array when `allow_empty` (negative gallery entries).
    """
    value = np.asarray(value)
    if value.size == 0 and allow_empty:
        return None
    if value.size != 4 or not (np.issubdtype(value.dtype, np.integer)
                               or np.issubdtype(value.dtype, np.floating)):
        expected = '4 numbers (x, y, w, h)' + (' or an empty array' if allow_empty else '')
        raise ValueError(f'{where}: expected {expected}, got {value!r}')
    value = value.reshape(4)
    if np.issubdtype(value.dtype, np.floating):
        if not np.all(np.isfinite(value)) or np.any(value != np.round(value)):
            raise ValueError(f'{where}: expected integer pixel coordinates, got {value!r}')
    return value.astype(np.int64)


def _flag(value: Any) -> bool:
    value = np.asarray(value).reshape(-1)
    return bool(value[0]) if value.size else False


# ----------------------------------------------------------------------------- the files


def read_images(path: epath.PathLike) -> list[SceneImage]:
    """Reads `annotation/Images.mat`: key 'Img', struct (1, 18184) with fields
    (imname, nAppear, box), `box` a struct (1, nBoxes) with fields (idlocate, ishard).

    Returns:
        The images in file order, every box kept (filtering is the caller's choice).
    """
    mat = release_files.load_mat(path)
    images, seen = [], set()
    for i, rec in enumerate(records(mat_variable(mat, 'Img', path), ('imname', 'box'),
                                    f'{path}: Img')):
        name = mat_string(rec['imname'], f'{path}: Img[{i}].imname')
        if name in seen:
            raise ValueError(f'{path}: Img[{i}].imname {name!r} appears twice')
        seen.add(name)
        box_field = np.asarray(rec['box'])
        boxes = []
        if box_field.size:
            for j, b in enumerate(records(box_field, ('idlocate',), f'{path}: Img[{i}].box')):
                boxes.append(mat_box_xywh(b['idlocate'], f'{path}: Img[{i}] ({name}) '
                                          f'.box[{j}].idlocate'))
        images.append(SceneImage(name, np.asarray(boxes, np.int64).reshape(-1, 4)))
    return images


def read_pool(path: epath.PathLike) -> list[str]:
    """Reads `annotation/pool.mat`: key 'pool', a cell (6978, 1) of image names, in order."""
    mat = release_files.load_mat(path)
    cell = np.asarray(mat_variable(mat, 'pool', path))
    if cell.dtype != object:
        raise ValueError(f'{path}: pool: expected a cell array of image names, got dtype '
                         f'{cell.dtype} shape {cell.shape}')
    names = [mat_string(v, f'{path}: pool[{i}]') for i, v in enumerate(cell.reshape(-1))]
    duplicates = sorted(n for n, c in collections.Counter(names).items() if c > 1)
    if duplicates:
        raise ValueError(f'{path}: pool: image names listed twice: {duplicates[:10]}')
    return names


def read_train(path: epath.PathLike) -> list[TrainIdentity]:
    """Reads `annotation/test/train_test/Train.mat`: key 'Train', a cell (5532, 1) or (1, 5532)
    of (1, 1) structs (idname, nAppear, scene), `scene` a struct (1, nAppear) with fields
    (imname, idlocate, ishard).

    Returns:
        The identities in file order (SeqNet gives identity i the person id i + 1).
    """
    mat = release_files.load_mat(path)
    cell = np.asarray(mat_variable(mat, 'Train', path))
    if cell.ndim != 2 or 1 not in cell.shape:
        raise ValueError(f'{path}: Train: expected shape (N, 1) or (1, N), got {cell.shape}')
    identities = []
    # A cell of (1, 1) structs as released; a plain struct array is tolerated too.
    for i, item in enumerate(cell.reshape(-1)):
        item = np.asarray(item)
        where = f'{path}: Train[{i}]'
        rec = records(item, ('scene',), where)
        if rec.size != 1:
            raise ValueError(f'{where}: expected a (1, 1) struct, got shape {item.shape}')
        rec = rec[0]
        name = mat_string(rec['idname'], f'{where}.idname') if 'idname' in rec.dtype.names else ''
        appearances = []
        # reshape(-1) instead of squeeze(): an identity seen once must not become 0-d.
        for j, s in enumerate(records(rec['scene'], ('imname', 'idlocate'), f'{where}.scene')):
            appearances.append(Appearance(
                mat_string(s['imname'], f'{where}.scene[{j}].imname'),
                mat_box_xywh(s['idlocate'], f'{where}.scene[{j}].idlocate')))
        if not appearances:
            raise ValueError(f'{where}.scene: expected at least one appearance, got none')
        identities.append(TrainIdentity(name, appearances))
    return identities


def protocol_files(root: epath.PathLike) -> dict[int, epath.Path]:
    """The `TestG{N}.mat` files present in the release, by gallery size N (ascending)."""
    found = {}
    for p in (epath.Path(root) / PROTOCOL_DIR).glob('TestG*.mat'):
        m = re.fullmatch(r'TestG(\d+)\.mat', p.name)
        if m:
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def read_protocol(path: epath.PathLike, pool_index: Mapping[str, int],
                  gallery_size: int | None = None) -> Protocol:
    """Reads one `TestG{N}.mat`: key 'TestG{N}', struct (1, 2900) with fields (Query, Gallery).

    `Query` is a (1, 1) struct (imname, idlocate, ishard, idname); `Gallery` a struct (1, N) with
    fields (imname, idlocate, ishard), `idlocate` (1, 4) for entries that show the query person and
    an empty (1, 0) double for the others.

    Args:
        path: the file.
        pool_index: image name -> position in `pool.mat`; every image must be in the pool.
        gallery_size: N; parsed from the file name when None.

    Raises:
        ValueError: a malformed record, or an image that is not in the pool.
    """
    path = epath.Path(path)
    if gallery_size is None:
        m = re.fullmatch(r'TestG(\d+)\.mat', path.name)
        if not m:
            raise ValueError(f'{path}: expected a file named TestG<N>.mat')
        gallery_size = int(m.group(1))
    key = f'TestG{gallery_size}'
    protoc = records(mat_variable(release_files.load_mat(path), key, path), ('Query', 'Gallery'),
                     f'{path}: {key}')

    def index_of(name: str, where: str) -> int:
        if name not in pool_index:
            raise ValueError(f'{where}: image {name!r} is not in {POOL_MAT}; every query and '
                             f'gallery image of the protocol must be in the test pool')
        return pool_index[name]

    queries, offsets, image_index, positive_entry, positive_box = [], [0], [], [], []
    not_positives_first = wrong_length = 0
    for i, item in enumerate(protoc):
        where = f'{path}: {key}[{i}]'
        q = records(item['Query'], ('imname', 'idlocate'), f'{where}.Query')
        if q.size != 1:
            raise ValueError(f'{where}.Query: expected a (1, 1) struct, got {q.size} records')
        q = q[0]
        names = q.dtype.names
        query = ProtocolQuery(
            mat_string(q['imname'], f'{where}.Query.imname'),
            mat_box_xywh(q['idlocate'], f'{where}.Query.idlocate'),
            _flag(q['ishard']) if 'ishard' in names else False,
            mat_string(q['idname'], f'{where}.Query.idname') if 'idname' in names else '')
        index_of(query.image_name, f'{where}.Query.imname')
        queries.append(query)
        gallery = records(item['Gallery'], ('imname', 'idlocate'), f'{where}.Gallery')
        seen_negative = False
        for j, entry in enumerate(gallery):
            name = mat_string(entry['imname'], f'{where}.Gallery[{j}].imname')
            box = mat_box_xywh(entry['idlocate'], f'{where}.Gallery[{j}].idlocate',
                               allow_empty=True)
            if box is None:
                seen_negative = True
            else:
                not_positives_first += seen_negative
                positive_entry.append(len(image_index))
                positive_box.append(box)
            image_index.append(index_of(name, f'{where}.Gallery[{j}].imname'))
        wrong_length += len(gallery) != gallery_size
        offsets.append(len(image_index))
    if not_positives_first:
        logging.warning('%s: %d positive gallery entries follow a negative one (the release lists '
                        'positives first; loaders that stop at the first negative miss them).',
                        path, not_positives_first)
    if wrong_length:
        logging.warning('%s: %d of %d queries have a gallery of other than %d entries.', path,
                        wrong_length, len(queries), gallery_size)
    return Protocol(gallery_size, queries, np.asarray(offsets, np.int64),
                    np.asarray(image_index, np.int32), np.asarray(positive_entry, np.int64),
                    np.asarray(positive_box, np.int64).reshape(-1, 4))


def check_same_queries(reference: Protocol, other: Protocol, path: epath.PathLike) -> None:
    """Checks that `other` lists the same queries (image and box) in the same order as
    `reference`; all TestG files must, since query features are computed once for all sizes.

    Raises:
        ValueError: naming the first query that differs.
    """
    if len(other.queries) != len(reference.queries):
        raise ValueError(f'{path}: expected the {len(reference.queries)} queries of '
                         f'TestG{reference.gallery_size}.mat, got {len(other.queries)}')
    for i, (a, b) in enumerate(zip(reference.queries, other.queries)):
        if a.image_name != b.image_name or not np.array_equal(a.box_xywh, b.box_xywh):
            raise ValueError(
                f'{path}: query {i} is {b.image_name} {b.box_xywh.tolist()} (x, y, w, h), but '
                f'TestG{reference.gallery_size}.mat has {a.image_name} {a.box_xywh.tolist()}; '
                'all TestG files must list the same queries in the same order')
