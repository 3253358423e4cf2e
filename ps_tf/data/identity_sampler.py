"""Identity-balanced P x K batches of pooled features for stage 2
(docs/architecture.md#stage-2-re-id).

Two layers, as torchreid's `RandomIdentitySampler`:

1. `IdentityBalancedSampler`: plain, seeded numpy index logic, testable without TensorFlow. From
   the number of records of every identity it yields batches of P distinct identities x K sample
   indices (identity-major: K consecutive entries per identity).
2. `identity_balanced_dataset`: the tf.data pipeline that turns those indices into
   `(features (P*K, h, w, c) float32, labels (P*K,) int32)` batches read from the pooled-feature
   TFRecords.

Epoch. An epoch uses every eligible identity exactly once as a batch's identity: the eligible
identities are shuffled and cut into groups of P; the last group, if short, is completed with
identities drawn from the rest of the epoch's order (distinct within the batch). An epoch is thus
ceil(E / P) batches for E eligible identities (CUHK-SYSU train, 5,532 identities: 173 batches at
P = 32). Within a batch, an identity with at least K records contributes K distinct records drawn
without replacement; one with fewer (2 <= n < K) contributes all its n records plus K - n drawn
with replacement from them. Identities with a single record cannot form a positive pair and are
skipped (logged with their count, as are identities with no record). Epoch e draws from
`np.random.default_rng([seed, e])`, so any batch can be recomputed from (seed, batch number) alone:
a resumed stage 2 restarts the sequence at its step without replaying it (`start_batch`).

Bounded memory. TFRecords are sequential files, and a P x K batch needs P x K records scattered
over the whole directory (an identity's boxes come from different images, hence different shards).
Designs that stream the files cannot balance identities with bounded memory: a shuffle buffer is
not identity-balanced, and collecting K samples per identity while streaming holds up to
(identities x K) features, i.e. grows with the dataset; one reader per identity means thousands of
open readers. Instead the writer records each record's byte offset and length in a per-shard index
(`ps_tf.data.pooled.index`), and the pipeline is

    sampler (Python generator: record ids (P*K,) int64 per batch; computing them is cheap)
      -> map (parallel, deterministic): read those P*K records by seek + read (`RecordReader`),
         then `parse_pooled_example` on the batch (float16 bytes -> float32 (P*K, h, w, c))
      -> prefetch

so memory holds the index (24 bytes per record, plus the per-identity counts) and at most
`num_parallel_reads + prefetch_batches` batches in flight: while parsed, a batch exists as read,
parsed, decoded and float32 (about 3 x 2 + 4 = 10 bytes per feature value with float16 storage:
160 MiB for a J4 batch of 128, 640 MiB for J2), once parsed as float32 only (4 bytes per value);
plus allocator slack, and nothing else that depends on the dataset's size
(benchmarks/sampler_speed.py measures it at two sizes). Each batch costs P x K random reads of one
record each (0.25-1 MiB for J4-J2 in float16): efficient on local disks and the page cache; on
object stores, or to feed a fast accelerator, raise `num_parallel_reads`.

In memory. When the pooled set fits in memory (CUHK-SYSU's labelled boxes at J3 are ~7.4 GiB in
float16), `load_pooled_set` reads every record once into one array in the storage
dtype; `record_id_dataset` then yields only each batch's record ids (the same sampler and seed,
hence the same batches as the reader above) and the consumer gathers the features with
TensorFlow ops (`gather_features`): no Python per record, no file reads after loading, and on a
GPU the set sits in device memory, so a batch never crosses the host. `choose_reader` picks it
when the set takes at most a fraction of the memory available (`in_memory_budget`).
"""

from __future__ import annotations

import os
from typing import Iterator, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from ps_tf.data.pooled import records as pooled_records
from ps_tf.data.pooled import index as pooled_index
from ps_tf.data.pooled import manifest as pooled_manifest


class IdentityBalancedSampler:
    """Seeded P x K batches of (identity label, sample index) pairs; plain numpy.

    Args:
        identity_counts: the number of records of every identity label, (num_identities,).
        identities_per_batch: P, distinct identities per batch.
        samples_per_identity: K, samples per identity (>= 2, to form positive pairs).
        seed: the random seed; same seed -> same batches.

    Raises:
        ValueError: P or K out of range, or fewer than P identities with >= 2 records.
    """

    def __init__(self, identity_counts: Sequence[int], identities_per_batch: int = 32,
                 samples_per_identity: int = 4, seed: int = 0):
        counts = np.asarray(identity_counts, np.int64).reshape(-1)
        if identities_per_batch < 1:
            raise ValueError(f'identities_per_batch (P) must be >= 1, got {identities_per_batch}')
        if samples_per_identity < 2:
            raise ValueError(f'samples_per_identity (K) must be >= 2 to form positive pairs, got '
                             f'{samples_per_identity}')
        if np.any(counts < 0):
            raise ValueError('identity_counts must be >= 0')
        self.identity_counts = counts
        self.identities_per_batch = identities_per_batch
        self.samples_per_identity = samples_per_identity
        self.seed = seed
        self.eligible_labels = np.flatnonzero(counts >= 2)
        self.num_single_sample = int(np.count_nonzero(counts == 1))
        self.num_without_samples = int(np.count_nonzero(counts == 0))
        logging.info('Identity sampler: %d identities with >= 2 records; skipped %d with a single '
                     'record and %d with none', len(self.eligible_labels),
                     self.num_single_sample, self.num_without_samples)
        if len(self.eligible_labels) < identities_per_batch:
            raise ValueError(f'P x K batches need at least P = {identities_per_batch} identities '
                             f'with >= 2 records; there are {len(self.eligible_labels)} (of '
                             f'{len(counts)}; {self.num_single_sample} have a single record)')

    @property
    def batch_size(self) -> int:
        """P x K."""
        return self.identities_per_batch * self.samples_per_identity

    @property
    def batches_per_epoch(self) -> int:
        """ceil(eligible identities / P): every identity once as a batch identity."""
        return -(-len(self.eligible_labels) // self.identities_per_batch)

    @property
    def box_batches_per_epoch(self) -> int:
        """ceil(records of the eligible identities / (P x K)): as many samples as there are
        records (the other reading of an "epoch" for P x K batches)."""
        records = int(self.identity_counts[self.eligible_labels].sum())
        return -(-records // self.batch_size)

    def epoch(self, epoch: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The batches of one epoch (definition in the module docstring).

        Args:
            epoch: the epoch number (>= 0); with the seed, it determines the batches.

        Returns:
            `batches_per_epoch` pairs of `labels` int64 (P*K,) and `sample_indices` int64 (P*K,)
            (the i-th record of its identity, in [0, count)); identity-major: entries
            [j*K, (j+1)*K) belong to the batch's j-th identity.
        """
        p, k = self.identities_per_batch, self.samples_per_identity
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.eligible_labels)
        short = (-len(order)) % p
        if short:   # complete the last group with identities not already in it
            filler = rng.choice(order[:len(order) - (p - short)], short, replace=False)
            order = np.concatenate([order, filler])
        batches = []
        for group in order.reshape(-1, p):
            samples = [self._samples(rng, self.identity_counts[label], k) for label in group]
            batches.append((np.repeat(group, k), np.concatenate(samples)))
        return batches

    @staticmethod
    def _samples(rng: np.random.Generator, count: int, k: int) -> np.ndarray:
        if count >= k:
            return rng.choice(count, k, replace=False)
        # All records once, then the missing ones with replacement; shuffled.
        return rng.permutation(np.concatenate([np.arange(count), rng.choice(count, k - count)]))

    def batches(self, start_batch: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """An endless sequence of batches, from global batch number `start_batch` on.

        Batch b is batch b % batches_per_epoch of epoch b // batches_per_epoch.
        """
        if start_batch < 0:
            raise ValueError(f'start_batch must be >= 0, got {start_batch}')
        epoch, skip = divmod(start_batch, self.batches_per_epoch)
        while True:
            yield from self.epoch(epoch)[skip:]
            epoch, skip = epoch + 1, 0


def identity_balanced_dataset(manifest: pooled_manifest.PooledManifest,
                              identities_per_batch: int = 32, samples_per_identity: int = 4,
                              seed: int = 0, start_batch: int = 0,
                              num_parallel_reads: int = 2,
                              prefetch_batches: int = 1) -> tf.data.Dataset:
    """Endless P x K batches of pooled features with bounded memory (design in module docstring).

    Check the manifest against the model first (`pooled_manifest.check_manifest`).

    Args:
        manifest: a complete pooled-feature manifest (`pooled_manifest.read_manifest`).
        identities_per_batch: P.
        samples_per_identity: K.
        seed: the sampler's seed; the batches are deterministic given it.
        start_batch: the global batch number to start at (e.g. the restored step).
        num_parallel_reads: batches read and parsed in parallel (the map's own buffer).
        prefetch_batches: further parsed batches buffered ahead of the consumer.

    Returns:
        A dataset of `(features, labels)`: float32 (P*K, h, w, c) and int32 (P*K,) global
        labels, identity-major (K consecutive samples per identity).
    """
    if num_parallel_reads < 1 or prefetch_batches < 0:
        raise ValueError(f'num_parallel_reads must be >= 1 and prefetch_batches >= 0, got '
                         f'{num_parallel_reads} and {prefetch_batches}')
    index = pooled_index.load_record_index(manifest)
    batch_size, batches = _record_id_batches(manifest, index, identities_per_batch,
                                             samples_per_identity, seed, start_batch)
    reader = pooled_index.RecordReader(index)

    def record_ids() -> Iterator[np.ndarray]:
        for ids, _ in batches():
            yield ids

    def read_and_parse(ids: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        # One map for reading and parsing: fewer batches of intermediate tensors alive at once.
        serialized, expected_labels = tf.numpy_function(
            lambda ids: (reader.read(ids), index.label[ids]), [ids], (tf.string, tf.int64),
            stateful=False)
        parsed = pooled_records.parse_pooled_example(
            tf.ensure_shape(serialized, [batch_size]), manifest.pooled_shape, manifest.dtype)
        check = tf.debugging.assert_equal(
            tf.cast(parsed['label'], tf.int64), expected_labels,
            message='a pooled record\'s label differs from its shard index')
        with tf.control_dependencies([check]):
            return tf.identity(parsed['feature']), tf.identity(parsed['label'])

    dataset = tf.data.Dataset.from_generator(
        record_ids, output_signature=tf.TensorSpec([batch_size], tf.int64))
    dataset = dataset.map(read_and_parse, num_parallel_calls=num_parallel_reads,
                          deterministic=True)
    return dataset.prefetch(prefetch_batches)


def pooled_set_bytes(manifest: pooled_manifest.PooledManifest) -> int:
    """Bytes of all the manifest's features in their storage dtype (the in-memory array)."""
    return (manifest.num_records * int(np.prod(manifest.pooled_shape))
            * np.dtype(manifest.dtype).itemsize)


def available_memory_bytes() -> int:
    """The memory the system can give without swapping (Linux MemAvailable; else physical)."""
    try:
        with open('/proc/meminfo', encoding='ascii') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')


def choose_reader(manifest: pooled_manifest.PooledManifest, in_memory_budget: float,
                  available: int | None = None, copies: int = 1) -> str:
    """'memory' when `copies` of the pooled set (the loaded array, and one per CPU replica)
    take at most `in_memory_budget` x the available memory (0 = never), else 'records' (the
    random-access reader)."""
    if not 0.0 <= in_memory_budget <= 1.0:
        raise ValueError(f'in_memory_budget must be in [0, 1], got {in_memory_budget}')
    available = available_memory_bytes() if available is None else available
    fits = copies * pooled_set_bytes(manifest) <= in_memory_budget * available
    return 'memory' if in_memory_budget > 0 and fits else 'records'


def load_pooled_set(manifest: pooled_manifest.PooledManifest, chunk_records: int = 256
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Every record of the manifest, in record-id order: features (N, h, w, c) in the storage
    dtype and global labels (N,) int32. Reads each shard once, sequentially, chunk by chunk."""
    index = pooled_index.load_record_index(manifest)
    reader = pooled_index.RecordReader(index)
    shape, dtype = tuple(manifest.pooled_shape), np.dtype(manifest.dtype)
    features = np.empty((len(index),) + shape, dtype)
    labels = np.empty(len(index), np.int32)
    try:
        for start in range(0, len(index), chunk_records):
            ids = np.arange(start, min(len(index), start + chunk_records))
            parsed = pooled_records.parse_pooled_example(reader.read(ids), shape, manifest.dtype)
            # Exact: float16 and uint8 values round-trip through the parser's float32.
            features[ids] = parsed['feature'].numpy().astype(dtype)
            labels[ids] = parsed['label'].numpy()
    finally:
        reader.close()
    if not np.array_equal(labels, index.label):
        raise ValueError(f'{manifest.directory}: a pooled record\'s label differs from its shard '
                         'index')
    return features, labels


def record_id_dataset(manifest: pooled_manifest.PooledManifest, identities_per_batch: int = 32,
                      samples_per_identity: int = 4, seed: int = 0,
                      start_batch: int = 0) -> tf.data.Dataset:
    """The batches of `identity_balanced_dataset` (same sampler, seed and order) as record ids:
    `(ids, labels)`, int64 (P*K,) rows of `load_pooled_set`'s arrays and their int32 labels. The
    consumer gathers the features from the set it holds in memory (stage 2 keeps it as a
    variable on each device and gathers inside its training step)."""
    batch_size, batches = _record_id_batches(manifest, pooled_index.load_record_index(manifest),
                                             identities_per_batch, samples_per_identity, seed,
                                             start_batch)
    return tf.data.Dataset.from_generator(batches, output_signature=(
        tf.TensorSpec([batch_size], tf.int64), tf.TensorSpec([batch_size], tf.int32))
    ).prefetch(2)


def _record_id_batches(manifest, index, identities_per_batch, samples_per_identity, seed,
                       start_batch):
    """(P*K, a generator function of the sampler's batches as (record ids int64, labels int32)):
    the one batch sequence both readers follow."""
    sampler = IdentityBalancedSampler(manifest.identity_counts, identities_per_batch,
                                      samples_per_identity, seed)

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for labels, sample_indices in sampler.batches(start_batch):
            ids = index.record_ids(labels, sample_indices)
            yield ids, index.label[ids].astype(np.int32)

    return sampler.batch_size, batches


def gather_features(table: tf.Tensor | tf.Variable, ids: tf.Tensor) -> tf.Tensor:
    """The float32 features of record `ids` from the pooled set held in memory (a tensor or
    variable in the storage dtype, `load_pooled_set`'s features)."""
    return tf.cast(tf.gather(table, ids), tf.float32)
