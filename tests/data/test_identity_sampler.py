"""Identity-balanced P x K sampler: index logic, the tf.data reader, and bounded memory."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from ps_tf.data import identity_sampler
from ps_tf.data.pooled import records as pooled_records
from ps_tf.data.pooled import index as pooled_index
from ps_tf.data.pooled import manifest as pooled_manifest

# 0, 1 record: skipped; 2, 3 records: fewer than K = 4; the rest: >= K.
COUNTS = [5, 1, 2, 0, 4, 3, 9, 1, 6, 2, 7, 4, 5, 8]
P, K = 3, 4


def _write(directory, counts, shape=(4, 2, 8), num_shards=3, constant_features=False):
    """Writes a pooled-feature directory with `counts[i]` records of person i, interleaved."""
    rng = np.random.default_rng(0)
    identities = [i for i, count in enumerate(counts) for _ in range(count)]
    identities = [identities[i] for i in rng.permutation(len(identities))]
    identity_map = pooled_manifest.IdentityMap([('toy', i) for i in range(len(counts))])
    writer = pooled_records.ShardedWriter(
        str(directory), num_shards=num_shards, identity_map=identity_map, variant='J4',
        pooled_shape=shape, source_checkpoint='ckpt')
    per_shard = -(-len(identities) // num_shards)
    for shard_index, chunk in enumerate(pooled_records.split_into_shards(identities, per_shard)):
        writer.write_shard(shard_index, (pooled_records.PooledBox(
            feature=(np.full(shape, i % 7, np.float32) if constant_features
                     else rng.normal(size=shape).astype(np.float32)),
            identity=person_id, dataset='toy', image_name=f'{shard_index}_{i}.jpg',
            box=np.zeros(4)) for i, person_id in enumerate(chunk)))
    return writer.finalize()


def test_batches_are_p_distinct_identities_times_k(caplog):
    # On the absl logger itself: once any test of the process has parsed absl's flags, that logger
    # is at absl's default verbosity (WARNING) and would drop the INFO line.
    with caplog.at_level(logging.INFO, logger='absl'):
        sampler = identity_sampler.IdentityBalancedSampler(COUNTS, P, K, seed=0)
    assert 'skipped 2 with a single record and 1 with none' in caplog.text
    assert sampler.num_single_sample == 2 and sampler.num_without_samples == 1
    eligible = {i for i, count in enumerate(COUNTS) if count >= 2}
    assert set(sampler.eligible_labels) == eligible
    for labels, samples in sampler.epoch(0) + sampler.epoch(1):
        assert labels.shape == samples.shape == (P * K,)
        groups = labels.reshape(P, K)
        assert (groups == groups[:, :1]).all()                    # identity-major
        assert len(set(groups[:, 0])) == P                        # P distinct identities
        for label, sample in zip(groups[:, 0], samples.reshape(P, K)):
            count = COUNTS[label]
            assert label in eligible and 0 <= sample.min() and sample.max() < count
            # Replacement only when needed: distinct if count >= K, else every record present.
            assert len(set(sample)) == min(count, K)


def test_epoch_uses_every_eligible_identity():
    sampler = identity_sampler.IdentityBalancedSampler(COUNTS, P, K, seed=3)
    num_eligible = sum(count >= 2 for count in COUNTS)
    assert sampler.batches_per_epoch == -(-num_eligible // P) == 4
    for epoch in range(5):
        batches = sampler.epoch(epoch)
        assert len(batches) == sampler.batches_per_epoch
        seen = np.concatenate([labels for labels, _ in batches])
        assert set(seen) == set(sampler.eligible_labels)


def test_seed_determinism_and_resume_from_a_batch():
    def take(seed, count, start=0):
        batches = identity_sampler.IdentityBalancedSampler(COUNTS, P, K, seed).batches(start)
        return [np.stack(next(batches)) for _ in range(count)]

    first, again, other = take(7, 10), take(7, 10), take(8, 10)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    assert all(np.array_equal(a, b) for a, b in zip(first[6:], take(7, 4, start=6)))


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match='at least P = 12 identities with >= 2 records; there '
                                         'are 11'):
        identity_sampler.IdentityBalancedSampler(COUNTS, 12, K)
    with pytest.raises(ValueError, match='K'):
        identity_sampler.IdentityBalancedSampler(COUNTS, P, 1)


def test_dataset_yields_the_records_the_sampler_chose(tmp_path):
    manifest = _write(tmp_path, COUNTS)
    written = {}   # (label, index within the identity) -> feature, from a sequential read
    index = pooled_index.load_record_index(manifest)
    for record_id, record in enumerate(pooled_records.pooled_dataset(manifest)
                                       .as_numpy_iterator()):
        rank = int(np.flatnonzero(index.by_label == record_id)[0] - index.label_start[
            record['label']])
        written[(int(record['label']), rank)] = record['feature']
    sampler = identity_sampler.IdentityBalancedSampler(manifest.identity_counts, P, K, seed=5)
    expected = [next(sampler.batches(start)) for start in range(6)]

    dataset = identity_sampler.identity_balanced_dataset(manifest, P, K, seed=5)
    assert dataset.element_spec[0].shape == (P * K, 4, 2, 8)
    for (features, labels), (want_labels, samples) in zip(dataset.take(6), expected):
        assert labels.dtype.name == 'int32' and features.dtype.name == 'float32'
        np.testing.assert_array_equal(labels, want_labels)
        np.testing.assert_array_equal(
            features, np.stack([written[(int(lab), int(s))] for lab, s in zip(labels, samples)]))
    resumed = identity_sampler.identity_balanced_dataset(manifest, P, K, seed=5, start_batch=4)
    np.testing.assert_array_equal(next(iter(resumed))[1], expected[4][0])


_CHILD = """
import json, resource, sys
from ps_tf.data import identity_sampler
from ps_tf.data.pooled import manifest as pooled_manifest

def rss_kib():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024

manifest = pooled_manifest.read_manifest(sys.argv[1])
baseline = rss_kib()
dataset = identity_sampler.identity_balanced_dataset(manifest, 8, 4, seed=0)
for features, labels in dataset.take(int(sys.argv[2])):
    pass
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({'growth_mib': (peak - baseline) / 1024}))
"""


@pytest.mark.slow
def test_sampler_memory_does_not_grow_with_the_dataset(tmp_path):
    """Peak RSS growth while sampling 32 batches: 8 MiB vs 128 MiB of features on disk."""
    shape = (16, 8, 128)   # 32 KiB per record in float16, 64 KiB as float32
    growth = {}
    for name, num_identities in (('small', 32), ('large', 512)):
        manifest = _write(tmp_path / name, [8] * num_identities, shape, num_shards=4,
                          constant_features=True)
        output = subprocess.run([sys.executable, '-c', _CHILD, manifest.directory, '32'],
                                check=True, capture_output=True, text=True).stdout
        growth[name] = json.loads(output.strip().splitlines()[-1])['growth_mib']
    # Holding the large dataset would add >= 128 MiB (256 MiB as float32).
    assert growth['large'] - growth['small'] < 24, growth


def test_in_memory_batches_equal_the_disk_readers(tmp_path):
    manifest = _write(tmp_path, COUNTS)
    from_disk = identity_sampler.identity_balanced_dataset(manifest, P, K, seed=5, start_batch=3)
    features, labels = identity_sampler.load_pooled_set(manifest)
    assert features.dtype == np.float16 and features.shape == (sum(COUNTS), 4, 2, 8)
    table = tf.Variable(features, trainable=False)
    ids = identity_sampler.record_id_dataset(manifest, P, K, seed=5, start_batch=3)
    for (disk_features, disk_labels), (batch_ids, batch_labels) in zip(from_disk.take(8),
                                                                       ids.take(8)):
        np.testing.assert_array_equal(batch_labels, disk_labels)
        np.testing.assert_array_equal(labels[batch_ids.numpy()], disk_labels)
        gathered = identity_sampler.gather_features(table, batch_ids)
        assert gathered.dtype == tf.float32
        np.testing.assert_array_equal(gathered, disk_features)   # exact: float16 round trip


def test_the_reader_is_chosen_by_the_memory_budget(tmp_path):
    manifest = _write(tmp_path, COUNTS)
    size = identity_sampler.pooled_set_bytes(manifest)
    assert size == sum(COUNTS) * 4 * 2 * 8 * 2                          # float16
    assert identity_sampler.choose_reader(manifest, 0.5, available=2 * size) == 'memory'
    assert identity_sampler.choose_reader(manifest, 0.5, available=2 * size - 1) == 'records'
    assert identity_sampler.choose_reader(manifest, 0.0, available=10**12) == 'records'
    with pytest.raises(ValueError, match='in_memory_budget'):
        identity_sampler.choose_reader(manifest, 1.5)
    assert identity_sampler.available_memory_bytes() > 2**20
