"""Global identity labels and the JSON manifest of a pooled-feature directory
(docs/formats.md#manifest).

Identities. Person ids are only unique within their dataset (CUHK-SYSU and PRW both have a person
1), so when several re-ID datasets are aggregated every (dataset, person_id) pair gets a global,
contiguous label: pairs sorted by dataset name, then by person id, numbered from 0. The mapping is
deterministic (it does not depend on the order in which images are pooled) and is stored in the
manifest, so a label can always be traced back to its dataset and person. person_id -1
(`NO_IDENTITY`, an unlabelled box) has no label and is never written.

Manifest (`manifest.json`, written atomically: temporary file + rename):

    {
      "format": "ps_tf.pooled_features", "format_version": 1,
      "complete": true,                  # false while the pooling run is in progress
      "variant": "J3",                   # the model variant that pooled the features (or Disj)
      "pooled_shape": [32, 16, 512],     # (height, width, channels) of every record
      "dtype": "float16",                # storage dtype of the feature bytes (uint8: Disj crops)
      "source_checkpoint": "...",        # stage-1 checkpoint the shared maps came from
      "num_shards": 10,
      "shards": [{"file": "pooled-00000-of-00010.tfrecord",
                  "index": "pooled-00000-of-00010.index.json", "num_records": 1234}, ...],
      "num_records": 12345,
      "datasets": {"cuhk_sysu": {"num_identities": 5532, "num_records": 15080}, ...},
      "identities": [{"label": 0, "dataset": "cuhk_sysu", "person_id": 1, "num_records": 4}, ...],
      "metadata": {...}                  # free-form, from the caller (splits, config, ...)
    }

`shards`, `num_records`, `datasets` counts and the per-identity `num_records` are filled in when
the run completes (`complete: true`); stage 2 refuses an incomplete manifest (`read_manifest`) and
one that does not match its model (`check_manifest`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Iterable, Mapping, Sequence

import tensorflow as tf

from ps_tf import atomic

MANIFEST_NAME = 'manifest.json'
FORMAT = 'ps_tf.pooled_features'
FORMAT_VERSION = 1
NO_IDENTITY = -1
STORAGE_DTYPES = ('float16', 'float32', 'uint8')   # uint8: the disjoint baseline's crops


class IdentityMap:
    """Global contiguous labels for (dataset, person_id) pairs, sorted by dataset then person id.

    Args:
        pairs: the (dataset name, person_id) pairs, one per identity; duplicates are merged. Use
            `from_person_ids` to build one from per-dataset id lists.

    Raises:
        ValueError: a person id is negative (-1, "no identity", has no label).
    """

    def __init__(self, pairs: Iterable[tuple[str, int]]):
        unique = sorted({(str(dataset), int(person_id)) for dataset, person_id in pairs})
        negative = [pair for pair in unique if pair[1] < 0]
        if negative:
            raise ValueError(f'person ids must be >= 0 to get a label (-1 marks an unlabelled box '
                             f'and is never written); got {negative[:5]}')
        self._pairs = tuple(unique)
        self._labels = {pair: label for label, pair in enumerate(unique)}

    @classmethod
    def from_person_ids(cls, person_ids: Mapping[str, Iterable[int]]) -> IdentityMap:
        """Builds the map from each dataset's person ids; -1 (`NO_IDENTITY`) entries are dropped.

        Args:
            person_ids: dataset name -> its person ids (any order, repeats allowed, e.g. the
                `objects/person_id` of every training image).
        """
        return cls((dataset, int(person_id)) for dataset, ids in person_ids.items()
                   for person_id in ids if int(person_id) != NO_IDENTITY)

    def __len__(self) -> int:
        return len(self._pairs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdentityMap) and self._pairs == other._pairs

    @property
    def pairs(self) -> tuple[tuple[str, int], ...]:
        """The (dataset, person_id) pair of every label, in label order."""
        return self._pairs

    @property
    def datasets(self) -> tuple[str, ...]:
        """The dataset names, sorted."""
        return tuple(sorted({dataset for dataset, _ in self._pairs}))

    def label(self, dataset: str, person_id: int) -> int:
        """The global label of `person_id` in `dataset`.

        Raises:
            ValueError: the pair is not in the map (including person_id -1).
        """
        try:
            return self._labels[(dataset, int(person_id))]
        except KeyError:
            raise ValueError(f'identity (dataset={dataset!r}, person_id={person_id}) is not in the '
                             f'identity map ({len(self)} identities over {list(self.datasets)})'
                             ) from None


@dataclasses.dataclass(frozen=True)
class ShardInfo:
    """One complete shard: its TFRecord file, its record index file and its number of records."""
    file: str
    index: str
    num_records: int


@dataclasses.dataclass(frozen=True)
class PooledManifest:
    """The parsed `manifest.json` of a pooled-feature directory.

    Attributes:
        path: the manifest file (errors name it).
        variant, pooled_shape, dtype, source_checkpoint, num_shards: as in the module docstring.
        identity_map: the global labels.
        identity_counts: records per label, (num_identities,) in label order; all zeros while
            the run is incomplete.
        shards: the complete shards in shard order (empty while the run is incomplete).
        complete: whether every shard was written and counted.
        metadata: the caller's free-form metadata.
    """
    path: str
    variant: str
    pooled_shape: tuple[int, int, int]
    dtype: str
    source_checkpoint: str
    num_shards: int
    identity_map: IdentityMap
    identity_counts: tuple[int, ...]
    shards: tuple[ShardInfo, ...] = ()
    complete: bool = False
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def directory(self) -> str:
        return os.path.dirname(self.path)

    @property
    def num_records(self) -> int:
        return sum(self.identity_counts)


def write_manifest(output_dir: str, *, variant: str, pooled_shape: Sequence[int], dtype: str,
                   source_checkpoint: str, num_shards: int, identity_map: IdentityMap,
                   identity_counts: Sequence[int] | None = None,
                   shards: Sequence[ShardInfo] = (), complete: bool = False,
                   metadata: Mapping[str, Any] | None = None) -> PooledManifest:
    """Writes `<output_dir>/manifest.json` atomically (format in the module docstring).

    Args:
        output_dir: the pooled-feature directory.
        variant: the model variant ('J2', 'J3', 'J4').
        pooled_shape: (height, width, channels) of every pooled feature.
        dtype: storage dtype, one of `STORAGE_DTYPES`.
        source_checkpoint: the stage-1 checkpoint that produced the shared maps.
        num_shards: the number of shards of the run.
        identity_map: the global labels.
        identity_counts: records per label (num_identities,); None = zeros (incomplete run).
        shards: the complete shards, in shard order (needed when `complete`).
        complete: True once every shard is written.
        metadata: free-form JSON-serialisable metadata.

    Returns:
        The manifest as written.

    Raises:
        ValueError: invalid dtype/shape, counts of the wrong length, or a complete manifest whose
            shards are not all listed or whose counts disagree with the shards.
    """
    pooled_shape = tuple(int(n) for n in pooled_shape)
    if len(pooled_shape) != 3 or min(pooled_shape) <= 0:
        raise ValueError(f'pooled_shape must be 3 positive sizes (h, w, c), got {pooled_shape}')
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f'dtype must be one of {STORAGE_DTYPES}, got {dtype!r}')
    counts = tuple(int(n) for n in identity_counts) if identity_counts is not None else (
        (0,) * len(identity_map))
    if len(counts) != len(identity_map):
        raise ValueError(f'identity_counts has {len(counts)} entries for {len(identity_map)} '
                         f'identities')
    if complete and (len(shards) != num_shards
                     or sum(shard.num_records for shard in shards) != sum(counts)):
        raise ValueError(f'a complete manifest needs all {num_shards} shards (got {len(shards)}) '
                         f'and identity counts that sum to their records')
    per_dataset: dict[str, dict[str, int]] = {}
    for (dataset, _), count in zip(identity_map.pairs, counts):
        entry = per_dataset.setdefault(dataset, {'num_identities': 0, 'num_records': 0})
        entry['num_identities'] += 1
        entry['num_records'] += count
    content = {
        'format': FORMAT, 'format_version': FORMAT_VERSION, 'complete': bool(complete),
        'variant': variant, 'pooled_shape': list(pooled_shape), 'dtype': dtype,
        'source_checkpoint': str(source_checkpoint), 'num_shards': int(num_shards),
        'shards': [dataclasses.asdict(shard) for shard in shards],
        'num_records': sum(counts), 'datasets': per_dataset,
        'identities': [{'label': label, 'dataset': dataset, 'person_id': person_id,
                        'num_records': count}
                       for label, ((dataset, person_id), count)
                       in enumerate(zip(identity_map.pairs, counts))],
        'metadata': dict(metadata or {}),
    }
    path = os.path.join(output_dir, MANIFEST_NAME)
    atomic.write_json(path, content, indent=1, sort_keys=False)
    return _from_json(path, content)


def read_manifest(directory: str, require_complete: bool = True) -> PooledManifest:
    """Reads `<directory>/manifest.json`.

    Args:
        directory: the pooled-feature directory (or the manifest file itself).
        require_complete: refuse a manifest whose pooling run has not finished (stage 2 does).

    Raises:
        ValueError: no manifest, not a pooled-feature manifest, an unsupported version, or an
            incomplete run when `require_complete`.
    """
    path = directory if directory.endswith('.json') else os.path.join(directory, MANIFEST_NAME)
    if not tf.io.gfile.exists(path):
        raise ValueError(f'{path}: no pooled-feature manifest (run feature pooling first)')
    with tf.io.gfile.GFile(path, 'r') as f:
        content = json.loads(f.read())
    if content.get('format') != FORMAT or content.get('format_version') != FORMAT_VERSION:
        raise ValueError(f'{path}: field "format"/"format_version" is '
                         f'{content.get("format")!r}/{content.get("format_version")!r}, expected '
                         f'{FORMAT!r}/{FORMAT_VERSION}')
    manifest = _from_json(path, content)
    if require_complete and not manifest.complete:
        raise ValueError(f'{path}: field "complete" is false: the pooling run that writes this '
                         f'directory has not finished (re-run it to resume; complete shards are '
                         f'skipped)')
    return manifest


def check_manifest(manifest: PooledManifest, *, variant: str | None = None,
                   pooled_shape: Sequence[int] | None = None, dtype: str | None = None,
                   source_checkpoint: str | None = None) -> None:
    """Refuses a manifest that does not match the model (or run) about to use it.

    Only the arguments that are not None are checked.

    Raises:
        ValueError: naming the manifest file, the field, the expected and the found value.
    """
    expected = {'variant': variant, 'dtype': dtype, 'source_checkpoint': source_checkpoint,
                'pooled_shape': None if pooled_shape is None else tuple(int(n)
                                                                        for n in pooled_shape)}
    for field, want in expected.items():
        found = getattr(manifest, field)
        if want is not None and found != want:
            raise ValueError(f'{manifest.path}: field "{field}" is {_show(found)} but '
                             f'{_show(want)} is expected; these pooled features were made for '
                             f'another model (re-run feature pooling for this one)')


def _show(value: Any) -> str:
    return json.dumps(list(value)) if isinstance(value, tuple) else repr(value)


def _from_json(path: str, content: Mapping[str, Any]) -> PooledManifest:
    identities = content['identities']
    labels = [entry['label'] for entry in identities]
    if labels != list(range(len(identities))):
        raise ValueError(f'{path}: field "identities" must list labels 0..{len(identities) - 1} '
                         f'in order')
    identity_map = IdentityMap((entry['dataset'], entry['person_id']) for entry in identities)
    if len(identity_map) != len(identities) or any(
            pair != (entry['dataset'], entry['person_id'])
            for pair, entry in zip(identity_map.pairs, identities)):
        raise ValueError(f'{path}: field "identities" is not sorted by (dataset, person_id) '
                         f'without repeats')
    return PooledManifest(
        path=path, variant=content['variant'], pooled_shape=tuple(content['pooled_shape']),
        dtype=content['dtype'], source_checkpoint=content['source_checkpoint'],
        num_shards=content['num_shards'], identity_map=identity_map,
        identity_counts=tuple(entry['num_records'] for entry in identities),
        shards=tuple(ShardInfo(**shard) for shard in content['shards']),
        complete=content['complete'], metadata=content.get('metadata', {}))
