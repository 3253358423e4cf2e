"""Protocol data of a person-search dataset: gallery annotations, queries and gallery lists.

Everything the evaluation needs besides a model's output, read from the `gallery` and `query`
splits of the shared TFDS schema (`tfds_builders/schema.py`) and never from the raw release files.
`load_protocol()` reads them without decoding any image; the search and detection functions take
the plain numpy structures below, which tests can also build by hand.

Two protocol styles (docs/evaluation.md#cuhk-sysu-search, docs/evaluation.md#prw-search):
- `cuhk_sysu`: every query carries its own gallery lists (one per gallery size, CUHK-SYSU's
  `TestG{N}.mat`); `synthetic_person_search` uses it too.
- `prw`: the queries carry no lists; each query's gallery is the whole gallery split except its
  own image (and, for the multi-view gallery, except every frame of its camera).

Ground-truth box convention. The reference code (SeqNet's `eval_func.py`) compares detections
with int32 ground-truth boxes, and which int32 box depends on the dataset's loader:
- `truncate` (CUHK-SYSU, synthetic and anything else): the stored x1, y1, x2, y2 cast to int32,
  i.e. truncated toward zero. CUHK-SYSU boxes are integers already (x2 = x + w), so this is exact.
- `seqnet_prw` (PRW): SeqNet clips the raw (x, y, w, h) at 0 *before* computing x2 = x + w, then
  truncates. The PRW builder stores x1 = x, x2 = x + w unclipped, so for x < 0 the reference's x2 is
  w (not x + w); `gt_boxes_int32` recovers it. (SeqNet's query boxes use the other order, truncate
  then clip; they only matter for extracting query embeddings, which is the model's job.)
The convention is applied to every ground-truth box the evaluation uses: detection-AP ground truth,
the positives of CUHK-SYSU gallery lists and the PRW query occurrences.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

CUHK_SYSU_STYLE = 'cuhk_sysu'
PRW_STYLE = 'prw'
TRUNCATE = 'truncate'
SEQNET_PRW = 'seqnet_prw'
BOX_CONVENTIONS = (TRUNCATE, SEQNET_PRW)
NO_IDENTITY = -1     # tfds_builders.schema.NO_IDENTITY (SeqNet's 5555, OIM's -1)
NOT_IN_GALLERY = -1


def gt_boxes_int32(boxes_xyxy: np.ndarray, convention: str) -> np.ndarray:
    """Applies a ground-truth box convention (see the module docstring).

    Args:
        boxes_xyxy: (K, 4) float64 pixel x1, y1, x2, y2 as stored in the dataset.
        convention: `truncate` or `seqnet_prw`.

    Returns:
        (K, 4) int32 pixel x1, y1, x2, y2 as the reference evaluation sees them.
    """
    boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    if convention == TRUNCATE:
        return boxes.astype(np.int32)
    if convention != SEQNET_PRW:
        raise ValueError(f'unknown box convention {convention!r}; expected one of '
                         f'{BOX_CONVENTIONS}')
    x1y1, x2y2 = boxes[:, :2], boxes[:, 2:]
    # x2 - x1 gives w back up to one float64 rounding; snap values within 1e-9 of an integer so that
    # an integral w is not truncated to w - 1.
    size = x2y2 - x1y1
    nearest = np.round(size)
    size = np.where(np.abs(size - nearest) <= 1e-9 * np.maximum(1.0, np.abs(size)), nearest, size)
    clipped_x2y2 = np.where(x1y1 >= 0, x2y2, size)   # clip(x, 0) + clip(w, 0); w >= 0 always
    return np.concatenate([np.maximum(x1y1, 0.0), clipped_x2y2], axis=1).astype(np.int32)


@dataclasses.dataclass(frozen=True)
class GalleryAnnotations:
    """The gallery split, in protocol order.

    Attributes:
        names: (N,) str image file names (`image/filename`).
        cameras: (N,) int64 camera ids, -1 when unknown.
        box_offsets: (N + 1,) int64; the boxes of image n are rows box_offsets[n]:box_offsets[n+1].
        boxes: (K, 4) float64 pixel x1, y1, x2, y2 as annotated (no convention applied).
        person_ids: (K,) int64 identities, -1 for people without one.
        ignore: (K,) bool ignore regions (never ground truth).
    """
    names: np.ndarray
    cameras: np.ndarray
    box_offsets: np.ndarray
    boxes: np.ndarray
    person_ids: np.ndarray
    ignore: np.ndarray

    def __post_init__(self):
        n, k = len(self.names), len(self.boxes)
        if len(set(self.names.tolist())) != n:
            raise ValueError('gallery image names are not unique')
        if self.cameras.shape != (n,) or self.box_offsets.shape != (n + 1,):
            raise ValueError(f'gallery of {n} images: cameras {self.cameras.shape} and box offsets '
                             f'{self.box_offsets.shape} do not fit')
        if (self.box_offsets[0] != 0 or self.box_offsets[-1] != k
                or np.any(np.diff(self.box_offsets) < 0)):
            raise ValueError(f'gallery box offsets do not partition the {k} boxes')
        if self.boxes.shape != (k, 4) or self.person_ids.shape != (k,) or self.ignore.shape != (k,):
            raise ValueError(f'gallery boxes {self.boxes.shape}, person ids '
                             f'{self.person_ids.shape} and ignore flags {self.ignore.shape} '
                             f'differ')

    @property
    def box_image(self) -> np.ndarray:
        """(K,) int64 gallery image of each box."""
        return np.repeat(np.arange(len(self.names)), np.diff(self.box_offsets))


@dataclasses.dataclass(frozen=True)
class GalleryLists:
    """One gallery size of a CUHK-SYSU-style protocol: a list of entries per query.

    Entries keep the protocol's order, duplicates and the query's own image included.

    Attributes:
        offsets: (Q + 1,) int64; the entries of query q are offsets[q]:offsets[q+1].
        image_index: (E,) int64 gallery protocol index of each entry's image.
        positive_box: (E, 4) float64 pixel x1, y1, x2, y2 of the query person in that image, as
            stored (no convention applied); NaN rows for entries without the person.
    """
    offsets: np.ndarray
    image_index: np.ndarray
    positive_box: np.ndarray

    @property
    def is_positive(self) -> np.ndarray:
        """(E,) bool: the entry contains the query person."""
        return ~np.isnan(self.positive_box[:, 0])

    @property
    def entry_query(self) -> np.ndarray:
        """(E,) int64 query of each entry."""
        return np.repeat(np.arange(len(self.offsets) - 1), np.diff(self.offsets))


@dataclasses.dataclass(frozen=True)
class QueryAnnotations:
    """The query split, in protocol order (the order of `query_embeddings`).

    Attributes:
        image_names: (Q,) str file name of each query's scene image.
        cameras: (Q,) int64 camera of that image, -1 when unknown.
        boxes: (Q, 4) float64 pixel x1, y1, x2, y2 query boxes.
        person_ids: (Q,) int64 query identities.
        galleries: gallery size -> `GalleryLists`; empty for PRW-style protocols.
    """
    image_names: np.ndarray
    cameras: np.ndarray
    boxes: np.ndarray
    person_ids: np.ndarray
    galleries: Mapping[int, GalleryLists] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.image_names)


@dataclasses.dataclass(frozen=True)
class Protocol:
    """Everything a person-search evaluation needs from a dataset.

    Attributes:
        dataset: dataset name, for reports.
        gallery: the gallery split.
        queries: the query split.
        box_convention: the ground-truth box convention (`truncate` or `seqnet_prw`).
    """
    dataset: str
    gallery: GalleryAnnotations
    queries: QueryAnnotations
    box_convention: str = TRUNCATE

    def __post_init__(self):
        if self.box_convention not in BOX_CONVENTIONS:
            raise ValueError(f'unknown box convention {self.box_convention!r}; expected one of '
                             f'{BOX_CONVENTIONS}')
        num_images, num_queries = len(self.gallery.names), len(self.queries)
        for size, lists in self.queries.galleries.items():
            if lists.offsets.shape != (num_queries + 1,):
                raise ValueError(f'gallery size {size}: lists for {len(lists.offsets) - 1} '
                                 f'queries, but there are {num_queries}')
            bad = (lists.image_index < 0) | (lists.image_index >= num_images)
            if np.any(bad):
                raise ValueError(f'gallery size {size}: entries name gallery images '
                                 f'{np.unique(lists.image_index[bad])[:5].tolist()} outside the '
                                 f'{num_images} of the gallery split')

    @property
    def style(self) -> str:
        """`cuhk_sysu` when the queries carry gallery lists, else `prw`."""
        return CUHK_SYSU_STYLE if self.queries.galleries else PRW_STYLE

    @property
    def gallery_sizes(self) -> list[int]:
        """The gallery sizes the protocol's lists define, ascending."""
        return sorted(self.queries.galleries)

    @property
    def query_image_index(self) -> np.ndarray:
        """(Q,) int64 gallery protocol index of each query's image (-1: not in the gallery)."""
        lookup = {name: i for i, name in enumerate(self.gallery.names.tolist())}
        return np.asarray([lookup.get(name, NOT_IN_GALLERY)
                           for name in self.queries.image_names.tolist()], np.int64)

    def gallery_gt_boxes(self) -> np.ndarray:
        """(K, 4) int32 pixel x1, y1, x2, y2 of every gallery box under the box convention."""
        return gt_boxes_int32(self.gallery.boxes, self.box_convention)


# ----------------------------------------------------------------------------- reading from TFDS

GALLERY_SPLIT = 'gallery'
QUERY_SPLIT = 'query'


def _partial_decoding():
    """Decodes only the protocol fields: the image (and normalised bboxes) are never parsed."""
    import tensorflow_datasets as tfds
    return tfds.decode.PartialDecoding({
        'image/filename': True,
        'protocol_index': True,
        'camera_id': True,
        'objects': {'box': True, 'person_id': True, 'ignore': True},
        'query': {
            'box': True,
            'person_id': True,
            'gallery_sizes': True,
            'gallery_lengths': True,
            'gallery_image_index': True,
            'gallery_positive_entry': True,
            'gallery_positive_box': True,
        },
    })


def _read_split(builder, split: str) -> list[dict]:
    """All examples of a split as numpy dicts, sorted by `protocol_index` (checked to be 0..n-1)."""
    import tensorflow_datasets as tfds
    if split not in builder.info.splits:
        raise ValueError(f'{builder.info.full_name} has no {split!r} split (it has '
                         f'{sorted(builder.info.splits)}); person-search evaluation needs '
                         f'{GALLERY_SPLIT!r} and {QUERY_SPLIT!r}')
    dataset = builder.as_dataset(split=split, decoders=_partial_decoding(), shuffle_files=False)
    examples = list(tfds.as_numpy(dataset))
    examples.sort(key=lambda e: int(e['protocol_index']))
    indices = np.asarray([int(e['protocol_index']) for e in examples])
    if not np.array_equal(indices, np.arange(len(examples))):
        raise ValueError(f'{builder.info.full_name}[{split}]: protocol_index is not 0..'
                         f'{len(examples) - 1} (duplicates or gaps), cannot order the split')
    return examples


def _decode_name(value) -> str:
    return value.decode('utf-8') if isinstance(value, bytes) else str(value)


def gallery_from_examples(examples: list[dict]) -> GalleryAnnotations:
    """Builds `GalleryAnnotations` from numpy examples of the shared schema in protocol order."""
    objects = [e['objects'] for e in examples]
    counts = np.asarray([len(o['person_id']) for o in objects], np.int64)
    return GalleryAnnotations(
        names=np.asarray([_decode_name(e['image/filename']) for e in examples], dtype=str),
        cameras=np.asarray([int(e['camera_id']) for e in examples], np.int64),
        box_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        boxes=np.concatenate([np.reshape(o['box'], (-1, 4)) for o in objects] +
                             [np.zeros((0, 4))]).astype(np.float64),
        person_ids=np.concatenate([o['person_id'] for o in objects] +
                                  [np.zeros(0)]).astype(np.int64),
        ignore=np.concatenate([o['ignore'] for o in objects] + [np.zeros(0)]).astype(bool),
    )


def queries_from_examples(examples: list[dict]) -> QueryAnnotations:
    """Builds `QueryAnnotations` (lists decoded) from numpy query examples in protocol order.

    Raises:
        ValueError: queries disagree on the gallery sizes, or a query's lists do not add up.
    """
    sizes_of = [tuple(int(s) for s in e['query']['gallery_sizes']) for e in examples]
    if len(set(sizes_of)) > 1:
        raise ValueError(f'queries define different gallery sizes: {sorted(set(sizes_of))}')
    sizes = sizes_of[0] if sizes_of else ()
    per_size: dict[int, tuple[list, list, list]] = {s: ([0], [], []) for s in sizes}
    for q, example in enumerate(examples):
        query = example['query']
        lengths = np.asarray(query['gallery_lengths'], np.int64)
        image_index = np.asarray(query['gallery_image_index'], np.int64)
        if len(lengths) != len(sizes) or lengths.sum() != len(image_index):
            raise ValueError(f'query {q}: gallery lengths {lengths.tolist()} (sizes {list(sizes)}) '
                             f'do not add up to the {len(image_index)} stored entries')
        boxes = np.full((len(image_index), 4), np.nan)
        entries = np.asarray(query['gallery_positive_entry'], np.int64)
        if np.any((entries < 0) | (entries >= len(image_index))):
            raise ValueError(f'query {q}: positive entries {entries.tolist()} out of range')
        boxes[entries] = np.reshape(query['gallery_positive_box'], (-1, 4))
        starts = np.concatenate([[0], np.cumsum(lengths)])
        for s, size in enumerate(sizes):
            offsets, images, positive_boxes = per_size[size]
            offsets.append(offsets[-1] + lengths[s])
            images.append(image_index[starts[s]:starts[s + 1]])
            positive_boxes.append(boxes[starts[s]:starts[s + 1]])
    galleries = {
        size: GalleryLists(offsets=np.asarray(offsets, np.int64),
                           image_index=np.concatenate(images + [np.zeros(0)]).astype(np.int64),
                           positive_box=np.concatenate(boxes + [np.zeros((0, 4))]))
        for size, (offsets, images, boxes) in per_size.items()
    }
    return QueryAnnotations(
        image_names=np.asarray([_decode_name(e['image/filename']) for e in examples], dtype=str),
        cameras=np.asarray([int(e['camera_id']) for e in examples], np.int64),
        boxes=np.asarray([np.reshape(e['query']['box'], 4) for e in examples],
                         np.float64).reshape(-1, 4),
        person_ids=np.asarray([int(e['query']['person_id']) for e in examples], np.int64),
        galleries=galleries,
    )


def default_box_convention(dataset: str, style: str) -> str:
    """`seqnet_prw` for PRW (by name or by PRW-style queries), `truncate` otherwise."""
    return SEQNET_PRW if dataset.split('/')[0] == 'prw' or style == PRW_STYLE else TRUNCATE


def load_protocol(dataset: str, data_dir: str | None = None,
                  box_convention: str | None = None) -> Protocol:
    """Reads the protocol data of a prepared TFDS dataset of the shared schema.

    Args:
        dataset: TFDS name, with config if any (e.g. `synthetic_person_search/tiny`, `prw`).
        data_dir: TFDS data directory (None = the TFDS default).
        box_convention: ground-truth convention; None = `default_box_convention`.

    Returns:
        The `Protocol`, gallery and queries sorted by `protocol_index`.

    Raises:
        ValueError: the dataset is not prepared, lacks a split, or its protocol data is
            inconsistent.
    """
    import tensorflow_datasets as tfds
    import tfds_builders  # noqa: F401  (registers the ps_tf builders with TFDS)

    builder = tfds.builder(dataset, data_dir=data_dir)
    if not builder.is_prepared():
        raise ValueError(f'{dataset} is not prepared in {builder.data_dir}; build it first, e.g. '
                         f'`tfds build {dataset} --data_dir=...` (with --manual_dir for releases)')
    gallery = gallery_from_examples(_read_split(builder, GALLERY_SPLIT))
    queries = queries_from_examples(_read_split(builder, QUERY_SPLIT))
    style = CUHK_SYSU_STYLE if queries.galleries else PRW_STYLE
    return Protocol(dataset=dataset, gallery=gallery, queries=queries,
                    box_convention=box_convention or default_box_convention(dataset, style))
