"""Per-shard record index and random-access reads of pooled-feature TFRecords.

TFRecord files are sequential: a record is framed as

    uint64 length | uint32 masked CRC32C(length) | data (length bytes) | uint32 masked CRC32C(data)

(little-endian), and nothing in the file says where record i starts. The writer knows, though:
record i + 1 starts 16 + length_i bytes after record i. So next to every shard
`pooled-SSSSS-of-NNNNN.tfrecord` it writes `pooled-SSSSS-of-NNNNN.index.json`:

    {"file": "pooled-00003-of-00010.tfrecord", "num_records": 3, "file_bytes": 1573080,
     "labels": [17, 17, 402], "offsets": [0, 524360, 1048720], "lengths": [524344, ...]}

`labels` are the records' global identity labels, `offsets` the byte offset of each record's
framing and `lengths` the length of its data (the serialized `tf.train.Example`). With it, a
record is one seek + one read (`RecordReader`), which is what an identity-balanced sampler needs: a
P x K batch touches P x K records scattered over the shards, and reading them costs P x K reads
whatever the dataset's size. The whole index costs 3 integers per record in memory (24 bytes,
against 0.25-1 MiB for the pooled feature itself).

A read checks the record's length field against the index, and `load_record_index` checks each
shard's size, so an index that does not belong to its shard fails loudly. The data CRC is not
verified (the checksum is not exposed in Python); `tf.data.TFRecordDataset` over the shards
(`pooled_records.pooled_dataset`) does verify it.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import struct
import threading
from typing import Sequence

import numpy as np
import tensorflow as tf

from ps_tf import atomic
from ps_tf.data.pooled import manifest as pooled_manifest

HEADER_BYTES = 12   # uint64 length + uint32 CRC of the length
FOOTER_BYTES = 4    # uint32 CRC of the data


def framed_size(data_length: int) -> int:
    """Bytes a record of `data_length` data bytes occupies in a TFRecord file."""
    return HEADER_BYTES + data_length + FOOTER_BYTES


def write_shard_index(path: str, shard_file: str, labels: Sequence[int], offsets: Sequence[int],
                      lengths: Sequence[int], file_bytes: int) -> None:
    """Writes a shard's index file atomically (format in the module docstring)."""
    atomic.write_json(path, {
        'file': shard_file, 'num_records': len(labels), 'file_bytes': int(file_bytes),
        'labels': [int(n) for n in labels], 'offsets': [int(n) for n in offsets],
        'lengths': [int(n) for n in lengths]})


def read_shard_index(path: str) -> dict:
    """Reads a shard's index file (format in the module docstring)."""
    with tf.io.gfile.GFile(path, 'r') as f:
        return json.loads(f.read())


def read_shard_labels(path: str) -> np.ndarray:
    """The global labels, int64 (num_records,), of a shard's records, from its index file."""
    return np.asarray(read_shard_index(path)['labels'], np.int64).reshape(-1)


@dataclasses.dataclass(frozen=True)
class RecordIndex:
    """Where every record of a pooled-feature directory is, grouped by identity.

    Attributes:
        paths: the shard files, in shard order.
        shard: int32 (N,), the shard (position in `paths`) of each record.
        offset: int64 (N,), byte offset of each record's framing in its shard.
        length: int64 (N,), data length of each record.
        label: int64 (N,), global identity label of each record.
        by_label: int64 (N,), record ids sorted by label (stable: shard order, then file order).
        label_start: int64 (num_identities + 1,), the records of label l are
            `by_label[label_start[l]:label_start[l + 1]]`.
    """
    paths: tuple[str, ...]
    shard: np.ndarray
    offset: np.ndarray
    length: np.ndarray
    label: np.ndarray
    by_label: np.ndarray
    label_start: np.ndarray

    def __len__(self) -> int:
        return len(self.label)

    def record_ids(self, labels: np.ndarray, sample_indices: np.ndarray) -> np.ndarray:
        """Record ids of the `sample_indices`-th records of identities `labels`.

        Args:
            labels: int (B,) global labels.
            sample_indices: int (B,), each in [0, count of its label).

        Returns:
            int64 (B,) record ids (positions in this index).
        """
        labels = np.asarray(labels, np.int64)
        sample_indices = np.asarray(sample_indices, np.int64)
        counts = self.label_start[labels + 1] - self.label_start[labels]
        if np.any(sample_indices < 0) or np.any(sample_indices >= counts):
            raise ValueError('sample index out of range for its identity')
        return self.by_label[self.label_start[labels] + sample_indices]


def load_record_index(manifest: pooled_manifest.PooledManifest) -> RecordIndex:
    """Loads the index of every shard of a complete pooled-feature directory.

    Raises:
        ValueError: an index is missing, does not match its shard's size, or disagrees with the
            manifest's record counts.
    """
    directory = manifest.directory
    paths, shards, offsets, lengths, labels = [], [], [], [], []
    for shard_id, shard in enumerate(manifest.shards):
        path = os.path.join(directory, shard.file)
        index_path = os.path.join(directory, shard.index)
        if not tf.io.gfile.exists(index_path) or not tf.io.gfile.exists(path):
            raise ValueError(f'{manifest.path}: shard {shard.file} or its index {shard.index} is '
                             f'missing from {directory}')
        index = read_shard_index(index_path)
        size = tf.io.gfile.stat(path).length
        if index['num_records'] != shard.num_records or index['file_bytes'] != size:
            raise ValueError(f'{index_path}: {index["num_records"]} records / '
                             f'{index["file_bytes"]} bytes, but the manifest lists '
                             f'{shard.num_records} records and {path} has {size} bytes')
        paths.append(path)
        shards.append(np.full(index['num_records'], shard_id, np.int32))
        offsets.append(np.asarray(index['offsets'], np.int64))
        lengths.append(np.asarray(index['lengths'], np.int64))
        labels.append(np.asarray(index['labels'], np.int64))
    label = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    num_identities = len(manifest.identity_counts)
    if len(label) and (label.min() < 0 or label.max() >= num_identities):
        raise ValueError(f'{manifest.path}: shard indexes hold labels outside [0, '
                         f'{num_identities})')
    counts = np.bincount(label, minlength=num_identities)
    if not np.array_equal(counts, np.asarray(manifest.identity_counts)):
        raise ValueError(f'{manifest.path}: field "identities" counts disagree with the shard '
                         f'indexes (re-run the pooling run\'s finalisation)')
    by_label = np.argsort(label, kind='stable')
    label_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return RecordIndex(paths=tuple(paths), shard=np.concatenate(shards) if shards else
                       np.zeros(0, np.int32), offset=np.concatenate(offsets) if offsets else
                       np.zeros(0, np.int64), length=np.concatenate(lengths) if lengths else
                       np.zeros(0, np.int64), label=label, by_label=by_label,
                       label_start=label_start)


class RecordReader:
    """Reads serialized records by record id: one seek + one read each.

    Thread-safe: every thread keeps its own open files (at most `max_open_files`, least recently
    used closed first), so a parallel `tf.data` map can call `read` concurrently. Local paths are
    opened with Python's `open`; other paths (gs://, ...) with `tf.io.gfile.GFile`.

    Args:
        index: the record index.
        max_open_files: open files kept per thread.
    """

    def __init__(self, index: RecordIndex, max_open_files: int = 16):
        if max_open_files < 1:
            raise ValueError(f'max_open_files must be >= 1, got {max_open_files}')
        self._index = index
        self._max_open_files = max_open_files
        self._local = threading.local()

    def _file(self, shard: int):
        files = getattr(self._local, 'files', None)
        if files is None:
            files = self._local.files = collections.OrderedDict()
        if shard in files:
            files.move_to_end(shard)
            return files[shard]
        if len(files) >= self._max_open_files:
            files.popitem(last=False)[1].close()
        path = self._index.paths[shard]
        files[shard] = open(path, 'rb') if '://' not in path else tf.io.gfile.GFile(path, 'rb')
        return files[shard]

    def read(self, record_ids: np.ndarray) -> np.ndarray:
        """The serialized `tf.train.Example`s of `record_ids`.

        Args:
            record_ids: int (B,) record ids.

        Returns:
            object (B,) array of bytes, in the order of `record_ids`. Reads are issued in
            (shard, offset) order.

        Raises:
            ValueError: a record's length field does not match the index.
        """
        record_ids = np.asarray(record_ids, np.int64).reshape(-1)
        index = self._index
        out = np.empty(len(record_ids), dtype=object)
        for position in np.lexsort((index.offset[record_ids], index.shard[record_ids])):
            record = record_ids[position]
            shard, offset, length = (int(index.shard[record]), int(index.offset[record]),
                                     int(index.length[record]))
            f = self._file(shard)
            f.seek(offset)
            header = f.read(HEADER_BYTES)
            data = f.read(length) if len(header) == HEADER_BYTES else b''
            if len(data) != length or struct.unpack('<Q', header[:8])[0] != length:
                raise ValueError(f'{index.paths[shard]}: no record of {length} bytes at offset '
                                 f'{offset}; the shard does not match its index')
            out[position] = data
        return out

    def close(self) -> None:
        """Closes this thread's open files."""
        for f in getattr(self._local, 'files', {}).values():
            f.close()
        self._local.files = collections.OrderedDict()
