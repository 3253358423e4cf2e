"""Pooled-feature TFRecords: the storage between feature pooling and stage 2
(docs/formats.md#pooled-features).

The feature-pooling stage ROI-pools every labelled ground-truth box of the re-ID dataset(s) on the
frozen shared maps and hands the results to `ShardedWriter` as `PooledBox`es; stage 2 reads them
back with `ps_tf.data.identity_sampler` (P x K batches) or `pooled_dataset` (every record, in
order).

Directory layout:

    manifest.json                          manifest.py: variant, shape, dtype, identities
    pooled-00000-of-00010.tfrecord         the records of shard 0
    pooled-00000-of-00010.index.json       index.py: label, byte offset, length per record
    ...

One record = one `tf.train.Example` per box:

- `feature/bytes`: the pooled feature (h, w, c) in C order as raw little-endian bytes of the
  storage dtype (float16 by default: a J3 box of 32 x 16 x 512 values is 512 KiB). Raw bytes rather
  than `tf.io.serialize_tensor`: no TensorProto wrapper, and numpy reads them too
  (`np.frombuffer(b, '<f2').reshape(shape)`).
- `feature/shape`: int64 (3,) = (h, w, c); `feature/dtype`: bytes, 'float16', 'float32' or
  'uint8' (the disjoint baseline's image crops).
- `label`: int64, the global identity label (`pooled_manifest.IdentityMap`); `person_id`: int64,
  the dataset's own id; `dataset`: bytes, the dataset name; `image_name`: bytes.
- `box`: the ground-truth box as 4 raw little-endian float64 (pixel x1, y1, x2, y2, as annotated;
  float64 like the dataset schema, so the box round-trips exactly).

Atomicity and resume. The caller splits its work (images) into shards deterministically
(`split_into_shards`) and writes each shard with `ShardedWriter.write_shard`: the records go to
`<shard>.tmp-<random>`; when the shard is complete its index is written through `ps_tf.atomic`
(a hidden temporary renamed to its final name), then the shard is renamed (`overwrite=False`).
The shard's final name is the commit point: a crash leaves at worst a temporary file, never a
truncated shard under its final name. `completed_shards()` lists the shards whose final shard and
index files exist, so an interrupted run recomputes only the missing ones; writing a shard first
removes its own stale temporary files (both kinds), and `finalize()` removes any left over. The
manifest is written at the start of a run with `complete: false` and the run's settings: a resumed
run with other settings (checkpoint, variant, shape, dtype, number of shards, identities) is
refused instead of mixing features.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from typing import Any, Iterable, Mapping, Sequence, TypeVar

import numpy as np
import tensorflow as tf
from absl import logging

from ps_tf import atomic
from ps_tf.data.pooled import index as pooled_index
from ps_tf.data.pooled import manifest as pooled_manifest

T = TypeVar('T')


@dataclasses.dataclass(frozen=True)
class PooledBox:
    """One ROI-pooled ground-truth box, as the feature-pooling stage hands it to the writer.

    Attributes:
        feature: (h, w, c) float array, the pooled feature.
        identity: the box's person_id in its dataset (-1 = no identity: not written).
        dataset: the dataset name (with `identity`, the key of the global label).
        image_name: the scene image's file name.
        box: (4,) pixel x1, y1, x2, y2 of the ground-truth box in the original image.
    """
    feature: np.ndarray
    identity: int
    dataset: str
    image_name: str
    box: np.ndarray


def shard_name(shard_index: int, num_shards: int) -> str:
    """'pooled-00003-of-00010.tfrecord' for shard 3 of 10."""
    return f'pooled-{shard_index:05d}-of-{num_shards:05d}.tfrecord'


def index_name(shard_index: int, num_shards: int) -> str:
    """'pooled-00003-of-00010.index.json' for shard 3 of 10."""
    return f'pooled-{shard_index:05d}-of-{num_shards:05d}.index.json'


def split_into_shards(items: Sequence[T], items_per_shard: int) -> list[list[T]]:
    """Splits work items (e.g. image names) into contiguous shards, deterministically.

    The same items in the same order always give the same shards, so a resumed run assigns the
    same images to the same shard names. Sort the items first if their order is not stable.

    Args:
        items: the work items, in a stable order.
        items_per_shard: the maximum number of items per shard; sizes differ by at most one.

    Returns:
        ceil(len(items) / items_per_shard) lists (at least one, possibly empty).
    """
    if items_per_shard < 1:
        raise ValueError(f'items_per_shard must be >= 1, got {items_per_shard}')
    num_shards = max(1, -(-len(items) // items_per_shard))
    bounds = np.linspace(0, len(items), num_shards + 1).round().astype(int)
    return [list(items[start:end]) for start, end in zip(bounds[:-1], bounds[1:])]


def record_bytes(pooled_shape: Sequence[int], dtype: str = 'float16',
                 name_length: int = 64) -> int:
    """An upper estimate of the disk bytes of one record: the encoded example of a box of that
    shape with names of `name_length` characters, TFRecord framing (16 bytes) and its entry in
    the shard index (64 bytes)."""
    box = PooledBox(np.zeros(tuple(pooled_shape), np.float32), 0, 'd' * name_length,
                    'i' * name_length, np.zeros(4))
    return len(encode_pooled_example(box, 0, dtype)) + 16 + 64


def encode_pooled_example(box: PooledBox, label: int, dtype: str = 'float16') -> bytes:
    """Serializes one box as a `tf.train.Example` (fields in the module docstring).

    Raises:
        ValueError: the feature is not 3-D, is not finite once cast to `dtype` (float16
            overflows above 65504), does not fit an integer `dtype` exactly, or the box is not
            4 values.
    """
    feature = np.asarray(box.feature)
    if feature.ndim != 3:
        raise ValueError(f'{box.dataset}/{box.image_name}: feature must be (h, w, c), got shape '
                         f'{feature.shape}')
    if np.issubdtype(np.dtype(dtype), np.integer):
        limits = np.iinfo(dtype)
        if feature.size and (feature.min() < limits.min or feature.max() > limits.max
                             or not np.array_equal(np.rint(feature), feature)):
            raise ValueError(f'{box.dataset}/{box.image_name}: a {dtype} record needs integer '
                             f'values in [{limits.min}, {limits.max}], got '
                             f'[{feature.min()}, {feature.max()}]')
    with np.errstate(over='ignore'):
        stored = feature.astype(np.dtype(dtype).newbyteorder('<'))
    if not np.all(np.isfinite(stored)):
        raise ValueError(f'{box.dataset}/{box.image_name}: pooled feature is not finite in '
                         f'{dtype} (max |value| {np.abs(feature).max()})')
    coordinates = np.asarray(box.box, '<f8')
    if coordinates.shape != (4,):
        raise ValueError(f'{box.dataset}/{box.image_name}: box must be (4,) pixel x1, y1, x2, '
                         f'y2, got shape {coordinates.shape}')

    def _bytes(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def _ints(values: Iterable[int]) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))

    return tf.train.Example(features=tf.train.Features(feature={
        'feature/bytes': _bytes(stored.tobytes(order='C')),
        'feature/shape': _ints(feature.shape),
        'feature/dtype': _bytes(dtype.encode()),
        'label': _ints([label]),
        'person_id': _ints([box.identity]),
        'dataset': _bytes(box.dataset.encode()),
        'image_name': _bytes(box.image_name.encode()),
        'box': _bytes(coordinates.tobytes()),
    })).SerializeToString()


_FEATURES = {
    'feature/bytes': tf.io.FixedLenFeature([], tf.string),
    'feature/shape': tf.io.FixedLenFeature([3], tf.int64),
    'feature/dtype': tf.io.FixedLenFeature([], tf.string),
    'label': tf.io.FixedLenFeature([], tf.int64),
    'person_id': tf.io.FixedLenFeature([], tf.int64),
    'dataset': tf.io.FixedLenFeature([], tf.string),
    'image_name': tf.io.FixedLenFeature([], tf.string),
    'box': tf.io.FixedLenFeature([], tf.string),
}


def parse_pooled_example(serialized: tf.Tensor, pooled_shape: Sequence[int],
                         dtype: str = 'float16') -> dict[str, tf.Tensor]:
    """Parses one serialized record, or a vector of them (a leading batch dimension B).

    Usable eagerly and inside `tf.data` (`Dataset.map`). Pass the manifest's `pooled_shape` and
    `dtype`: they give the feature its static shape, and every record is checked against them.

    Args:
        serialized: string () or (B,).
        pooled_shape: (h, w, c) of the features.
        dtype: the storage dtype.

    Returns:
        A dict of `feature`: float32 ([B,] h, w, c); `label`: int32 ([B]) global label;
        `person_id`: int64 ([B]); `dataset`, `image_name`: string ([B]); `box`: float64
        ([B,] 4) pixel x1, y1, x2, y2.
    """
    serialized = tf.convert_to_tensor(serialized, tf.string)
    single = serialized.shape.rank == 0
    parsed = tf.io.parse_example(serialized[None] if single else serialized, _FEATURES)
    shape = [int(n) for n in pooled_shape]
    checks = [
        tf.debugging.assert_equal(parsed['feature/shape'], tf.constant([shape], tf.int64),
                                  message=f'pooled record shape differs from {shape}'),
        tf.debugging.assert_equal(parsed['feature/dtype'],
                                  tf.fill(tf.shape(parsed['feature/dtype']), dtype),
                                  message=f'pooled record dtype differs from {dtype}'),
    ]
    with tf.control_dependencies(checks):
        values = tf.io.decode_raw(parsed['feature/bytes'], tf.dtypes.as_dtype(dtype))
    batch = [1 if single else serialized.shape[0]]   # static when the caller's is
    features = {
        'feature': tf.ensure_shape(tf.cast(tf.reshape(values, [-1] + shape), tf.float32),
                                   batch + shape),
        'label': tf.cast(parsed['label'], tf.int32),
        'person_id': parsed['person_id'],
        'dataset': parsed['dataset'],
        'image_name': parsed['image_name'],
        'box': tf.ensure_shape(tf.reshape(tf.io.decode_raw(parsed['box'], tf.float64), [-1, 4]),
                               batch + [4]),
    }
    return {key: value[0] for key, value in features.items()} if single else features


def pooled_dataset(manifest: pooled_manifest.PooledManifest) -> tf.data.Dataset:
    """Every record of a complete pooled-feature directory, in shard and file order.

    For inspection, tests and passes over all boxes (not for P x K training batches: see
    `ps_tf.data.identity_sampler`). Elements are dicts as `parse_pooled_example` returns them.
    """
    files = [os.path.join(manifest.directory, shard.file) for shard in manifest.shards]
    return tf.data.TFRecordDataset(files).map(
        lambda serialized: parse_pooled_example(serialized, manifest.pooled_shape,
                                                manifest.dtype),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def local_absolute(path: str) -> str:
    """`path` made absolute when it is a local path (a URL such as gs://... is left as it is).

    The manifest records the stage-1 checkpoint absolute, so that stage 2 finds it whichever
    directory it is started from.
    """
    return path if '://' in path else os.path.abspath(path)


class ShardedWriter:
    """Writes pooled features as atomic, resumable TFRecord shards plus their manifest.

    Usage (the feature-pooling stage):

        shards = split_into_shards(sorted(image_names), items_per_shard=500)
        writer = ShardedWriter(output_dir, num_shards=len(shards), identity_map=identity_map,
                               variant='J3', pooled_shape=(32, 16, 512),
                               source_checkpoint=checkpoint_path)
        for shard_index in writer.missing_shards():
            writer.write_shard(shard_index, pool_boxes(shards[shard_index]))  # PooledBox iterable
        manifest = writer.finalize()

    Args:
        output_dir: the pooled-feature directory (created if missing).
        num_shards: the number of shards of the run.
        identity_map: global labels of every identity that may be written.
        variant: the model variant ('J2', 'J3', 'J4').
        pooled_shape: (h, w, c) of every feature.
        source_checkpoint: the stage-1 checkpoint the shared maps come from.
        dtype: storage dtype, 'float16' (default) or 'float32'.
        metadata: free-form JSON-serialisable metadata for the manifest.

    Raises:
        ValueError: the directory holds a run with other settings.
    """

    def __init__(self, output_dir: str, *, num_shards: int,
                 identity_map: pooled_manifest.IdentityMap, variant: str,
                 pooled_shape: Sequence[int], source_checkpoint: str, dtype: str = 'float16',
                 metadata: Mapping[str, Any] | None = None):
        if num_shards < 1:
            raise ValueError(f'num_shards must be >= 1, got {num_shards}')
        self.output_dir = output_dir
        self.num_shards = num_shards
        self._identity_map = identity_map
        self._settings = dict(variant=variant, pooled_shape=tuple(int(n) for n in pooled_shape),
                              dtype=dtype, source_checkpoint=str(source_checkpoint),
                              num_shards=num_shards, identity_map=identity_map,
                              metadata=dict(metadata or {}))
        tf.io.gfile.makedirs(output_dir)
        manifest_path = os.path.join(output_dir, pooled_manifest.MANIFEST_NAME)
        if tf.io.gfile.exists(manifest_path):
            existing = pooled_manifest.read_manifest(output_dir, require_complete=False)
            for field, want in self._settings.items():
                if field == 'metadata':
                    continue
                found = getattr(existing, field)
                same = (found == want if field != 'source_checkpoint'   # older versions: as given
                        else local_absolute(found) == local_absolute(want))
                if not same:
                    shown = ((len(found), len(want)) if field == 'identity_map' else (found, want))
                    raise ValueError(f'{manifest_path}: field "{field}" is {shown[0]} but this '
                                     f'run has {shown[1]}; resume with the same settings or '
                                     f'write to a new directory')
            logging.info('Resuming the pooling run in %s: %d of %d shards complete', output_dir,
                         len(self.completed_shards()), num_shards)
        else:
            pooled_manifest.write_manifest(output_dir, complete=False, **self._settings)

    def completed_shards(self) -> list[int]:
        """The shards whose final shard and index files both exist (temporary files ignored)."""
        names = set(tf.io.gfile.listdir(self.output_dir))
        return [i for i in range(self.num_shards)
                if shard_name(i, self.num_shards) in names
                and index_name(i, self.num_shards) in names]

    def missing_shards(self) -> list[int]:
        """The shards still to write, in order."""
        done = set(self.completed_shards())
        return [i for i in range(self.num_shards) if i not in done]

    def _remove_temp_files(self, shard_index: int | None = None) -> None:
        prefixes = ('pooled-', pooled_manifest.MANIFEST_NAME) if shard_index is None else (
            shard_name(shard_index, self.num_shards), index_name(shard_index, self.num_shards))
        for name in tf.io.gfile.listdir(self.output_dir):
            if (name.startswith(prefixes) and '.tmp-' in name
                    or atomic.is_temporary(name, prefixes)):
                logging.info('Removing stale temporary file %s', name)
                tf.io.gfile.remove(os.path.join(self.output_dir, name))

    def write_shard(self, shard_index: int, boxes: Iterable[PooledBox]) -> int:
        """Writes one shard atomically; boxes without identity (-1) are skipped and counted.

        Args:
            shard_index: in [0, num_shards).
            boxes: the shard's pooled boxes (streamed: one record in memory at a time).

        Returns:
            The number of records written.

        Raises:
            ValueError: the shard is already complete, or a box has the wrong shape, a non-finite
                feature or an identity missing from the identity map.
        """
        if not 0 <= shard_index < self.num_shards:
            raise ValueError(f'shard_index must be in [0, {self.num_shards}), got {shard_index}')
        if shard_index in self.completed_shards():
            raise ValueError(f'shard {shard_name(shard_index, self.num_shards)} is already '
                             f'complete in {self.output_dir}; complete shards are never rewritten')
        self._remove_temp_files(shard_index)
        final_path = os.path.join(self.output_dir, shard_name(shard_index, self.num_shards))
        if tf.io.gfile.exists(final_path):   # its index was lost: the shard is not complete
            tf.io.gfile.remove(final_path)
        suffix = f'.tmp-{uuid.uuid4().hex}'
        temp_path = final_path + suffix
        labels, offsets, lengths, position, unlabelled = [], [], [], 0, 0
        with tf.io.TFRecordWriter(temp_path) as records:
            for box in boxes:
                if int(box.identity) == pooled_manifest.NO_IDENTITY:
                    unlabelled += 1
                    continue
                if tuple(np.shape(box.feature)) != self._settings['pooled_shape']:
                    raise ValueError(f'{box.dataset}/{box.image_name}: feature shape '
                                     f'{np.shape(box.feature)} differs from the run\'s pooled '
                                     f'shape {self._settings["pooled_shape"]}')
                label = self._identity_map.label(box.dataset, box.identity)
                serialized = encode_pooled_example(box, label, self._settings['dtype'])
                records.write(serialized)
                labels.append(label)
                offsets.append(position)
                lengths.append(len(serialized))
                position += pooled_index.framed_size(len(serialized))
        if tf.io.gfile.stat(temp_path).length != position:
            raise ValueError(f'{temp_path}: {tf.io.gfile.stat(temp_path).length} bytes written, '
                             f'{position} expected')
        index_path = os.path.join(self.output_dir, index_name(shard_index, self.num_shards))
        pooled_index.write_shard_index(index_path, os.path.basename(final_path), labels, offsets,
                                       lengths, position)
        tf.io.gfile.rename(temp_path, final_path, overwrite=False)
        logging.info('Wrote %s: %d records (%d unlabelled boxes skipped)',
                     os.path.basename(final_path), len(labels), unlabelled)
        return len(labels)

    def finalize(self) -> pooled_manifest.PooledManifest:
        """Counts the records of every shard and writes the complete manifest.

        Raises:
            ValueError: some shards are missing (their indices are listed).
        """
        missing = self.missing_shards()
        if missing:
            raise ValueError(f'{self.output_dir}: {len(missing)} of {self.num_shards} shards are '
                             f'not written yet: {missing[:20]}')
        self._remove_temp_files()
        counts = np.zeros(len(self._identity_map), np.int64)
        shards = []
        for i in range(self.num_shards):
            file, index = shard_name(i, self.num_shards), index_name(i, self.num_shards)
            labels = pooled_index.read_shard_labels(os.path.join(self.output_dir, index))
            counts += np.bincount(labels, minlength=len(counts))
            shards.append(pooled_manifest.ShardInfo(file=file, index=index,
                                                    num_records=len(labels)))
        manifest = pooled_manifest.write_manifest(self.output_dir, identity_counts=counts,
                                                  shards=shards, complete=True, **self._settings)
        logging.info('Pooled features complete in %s: %d records of %d identities',
                     self.output_dir, manifest.num_records, int(np.count_nonzero(counts)))
        return manifest
