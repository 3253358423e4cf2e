"""Feature pooling: the right records with the right identities, and resume by shard."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from ps_tf.data import datasets as datasets_lib
from ps_tf.data.decoder import decode_example
from ps_tf.data.pooled import manifest as pooled_manifest
from ps_tf.data.pooled import records as pooled_records
from ps_tf.models import loading, reid
from ps_tf.ops import geometry
from ps_tf.ops.geometry import resize_and_pad, scale_boxes
from ps_tf.training import feature_pooling
from stage1_fixture import make_stage1_run

DATASET = 'synthetic_person_search/tiny'
IMAGE = 64


@pytest.fixture(scope='module')
def stage1(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp('stage1'))
    checkpoint = make_stage1_run(model_dir, image_size=IMAGE)
    detector, config, restored = loading.restore_detector(model_dir)
    assert restored == checkpoint and config.variant == 'J4' and config.image_size == IMAGE
    return detector, checkpoint


def _pool(detector, checkpoint, output_dir, data_dir, **workers):
    return feature_pooling.pool_features(
        detector.trunk, 'J4', IMAGE, output_dir, [DATASET], checkpoint, images_per_shard=3,
        batch_size=2, data_dir=data_dir, **workers)


def _bytes(directory, name):
    with open(os.path.join(directory, name), 'rb') as file:
        return file.read()


def test_two_workers_pool_the_same_records_as_one(
        stage1, tiny_synthetic_data_dir, tmp_path, capsys):
    detector, checkpoint = stage1
    one = _pool(detector, checkpoint, str(tmp_path / 'one'), tiny_synthetic_data_dir)
    shared = str(tmp_path / 'two')
    assert _pool(detector, checkpoint, shared, tiny_synthetic_data_dir, num_workers=2,
                 worker_index=1) is None   # shard 1 of 3; shards 0 and 2 are the other's
    assert 'worker 1 of 2 is done; 2 shards are still being pooled' in capsys.readouterr().out
    assert sorted(name for name in os.listdir(shared) if name.startswith('pooled-')) == sorted(
        [pooled_records.shard_name(1, 3), pooled_records.index_name(1, 3)])
    assert not pooled_manifest.read_manifest(shared, require_complete=False).complete
    two = _pool(detector, checkpoint, shared, tiny_synthetic_data_dir, num_workers=2,
                worker_index=0)   # the last to finish writes the manifest
    assert two.complete and two.num_records == one.num_records
    assert two.identity_counts == one.identity_counts
    for i in range(3):
        for name in (pooled_records.shard_name(i, 3), pooled_records.index_name(i, 3)):
            assert _bytes(one.directory, name) == _bytes(shared, name), name
    with pytest.raises(ValueError, match=r'worker_index must be in \[0, num_workers=2\)'):
        _pool(detector, checkpoint, shared, tiny_synthetic_data_dir, num_workers=2,
              worker_index=2)


def test_pools_every_labelled_box_with_its_identity(
        stage1, tiny_synthetic_data_dir, tmp_path, monkeypatch):
    detector, checkpoint = stage1
    monkeypatch.chdir(os.path.dirname(checkpoint))   # given relative, recorded absolute
    manifest = _pool(detector, os.path.basename(checkpoint), str(tmp_path / 'pooled'),
                     tiny_synthetic_data_dir)
    # The ground truth, read independently.
    builder = datasets_lib.get_builder(DATASET, tiny_synthetic_data_dir)
    expected = []
    for example in tfds.as_numpy(builder.as_dataset(split='train', shuffle_files=False)):
        for person_id, box in zip(example['objects']['person_id'], example['objects']['box']):
            if person_id >= 0:
                expected.append((example['image/filename'].decode(), int(person_id),
                                 tuple(box)))
    assert manifest.complete and manifest.num_shards == 3   # 8 images, 3 per shard
    assert manifest.variant == 'J4' and manifest.pooled_shape == reid.pooled_shape('J4')
    assert manifest.dtype == 'float16' and manifest.source_checkpoint == checkpoint
    assert manifest.identity_map.pairs == tuple((DATASET, i) for i in range(4))
    records = list(tfds.as_numpy(pooled_records.pooled_dataset(manifest)))
    assert len(records) == manifest.num_records == len(expected) == 9
    found = [(r['image_name'].decode(), int(r['person_id']), tuple(r['box'])) for r in records]
    assert sorted(found) == sorted(expected)
    for record in records:
        assert record['label'] == manifest.identity_map.label(DATASET, record['person_id'])
    counts = np.bincount([r['label'] for r in records], minlength=4)
    np.testing.assert_array_equal(manifest.identity_counts, counts)

    # One record against the trunk + ROI align computed by hand.
    first = records[0]
    example = next(e for e in builder.as_dataset(split='train', shuffle_files=False)
                   if e['image/filename'].numpy() == first['image_name'])
    decoded = decode_example(example)
    image, info = resize_and_pad(decoded['image'], IMAGE)
    row = int(np.flatnonzero(np.all(decoded['annotated_boxes'].numpy() == first['box'], axis=1)
                             )[0])
    shared = detector.trunk(image[None], training=False)['C4']
    direct = geometry.roi_align(shared, scale_boxes(decoded['boxes'], info)[row:row + 1], [0],
                                IMAGE, reid.roi_size('J4'))[0].numpy()
    np.testing.assert_allclose(first['feature'], direct.astype(np.float16), rtol=2e-3,
                               atol=2e-3)


def test_resumed_run_skips_complete_shards(stage1, tiny_synthetic_data_dir, tmp_path,
                                           monkeypatch):
    detector, checkpoint = stage1
    output_dir = str(tmp_path / 'pooled')
    first = _pool(detector, checkpoint, output_dir, tiny_synthetic_data_dir)
    # An interrupted run: shard 1 lost (index gone, a temporary file left) and no final manifest.
    os.remove(os.path.join(output_dir, pooled_records.index_name(1, 3)))
    open(os.path.join(output_dir, pooled_records.shard_name(1, 3) + '.tmp-dead'), 'wb').close()
    pooled_manifest.write_manifest(
        output_dir, variant='J4', pooled_shape=first.pooled_shape, dtype='float16',
        source_checkpoint=checkpoint, num_shards=3, identity_map=first.identity_map,
        metadata=first.metadata)
    kept = {i: os.stat(os.path.join(output_dir, pooled_records.shard_name(i, 3))).st_mtime_ns
            for i in (0, 2)}
    pooled = []
    real_pool_shard = feature_pooling.FeaturePooler.pool_shard

    def counting_pool_shard(self, work, *args, **kwargs):
        pooled.append(work)
        return real_pool_shard(self, work, *args, **kwargs)

    monkeypatch.setattr(feature_pooling.FeaturePooler, 'pool_shard', counting_pool_shard)
    second = _pool(detector, checkpoint, output_dir, tiny_synthetic_data_dir)
    assert [(w.start, w.end) for w in pooled] == [(3, 5)]   # only shard 1 was recomputed
    assert second.identity_counts == first.identity_counts and second.complete
    for i, mtime in kept.items():
        assert os.stat(os.path.join(output_dir, pooled_records.shard_name(i, 3))
                       ).st_mtime_ns == mtime
    assert not [name for name in os.listdir(output_dir) if '.tmp-' in name]
    # Another checkpoint is refused instead of mixing features.
    with pytest.raises(ValueError, match='source_checkpoint'):
        _pool(detector, checkpoint + '-other', output_dir, tiny_synthetic_data_dir)


def test_identities_stay_unique_across_datasets(monkeypatch):
    fake = {'b_set': (5, np.array([1, 2, -1, 1]), np.array([2, 0, 0, 1, 0])),
            'a_set': (2, np.array([1, 7]), np.array([1, 1]))}
    monkeypatch.setattr(feature_pooling, 'read_person_ids',
                        lambda name, split, data_dir=None, manual_dir=None: fake[name])
    shards, identity_map = feature_pooling.plan_shards(['b_set', 'a_set'], 'train', 2)
    assert identity_map.pairs == (('a_set', 1), ('a_set', 7), ('b_set', 1), ('b_set', 2))
    assert identity_map.label('b_set', 1) != identity_map.label('a_set', 1)
    assert [(s.dataset, s.tfds_split) for s in shards] == [
        ('a_set', 'train[0:2]'), ('b_set', 'train[0:2]'), ('b_set', 'train[2:3]'),
        ('b_set', 'train[3:5]')]
    assert [s.labelled_boxes for s in shards] == [2, 2, 0, 1]   # what each shard will hold


def test_pooling_states_the_space_it_needs_and_refuses_a_disk_too_small(tmp_path, capsys,
                                                                        monkeypatch):
    shape, boxes = (16, 8, 512), 1000
    per_box = pooled_records.record_bytes(shape, 'float16')
    # The estimate is an upper bound of a real record of that shape.
    real = pooled_records.encode_pooled_example(pooled_records.PooledBox(
        np.ones(shape), 3, 'cuhk_sysu', 's1234.jpg', np.array([1.0, 2, 30, 60])), 5, 'float16')
    assert len(real) + 16 <= per_box <= len(real) + 16 + 300
    assert pooled_records.record_bytes(shape, 'float32') > 1.9 * per_box
    output_dir = str(tmp_path / 'run' / 'pooled')   # not created yet: its parent's disk counts
    assert feature_pooling.check_disk_space(output_dir, boxes, shape, 'float16') == boxes * per_box
    assert f'{boxes} boxes to pool need about' in capsys.readouterr().out

    monkeypatch.setattr(feature_pooling.shutil, 'disk_usage',
                        lambda path: shutil._ntuple_diskusage(10 * 2**30, 10 * 2**30, 2**20))
    with pytest.raises(OSError, match=r'pooled needs about 0\.\d\d GiB for 1000 boxes of '
                                      r'\(16, 8, 512\) float16, but its disk has 0\.00 GiB free'):
        feature_pooling.check_disk_space(output_dir, boxes, shape, 'float16')


def test_restore_detector_needs_a_stage1_run(tmp_path):
    with pytest.raises(ValueError, match='config.json'):
        loading.restore_detector(str(tmp_path))


@pytest.mark.parametrize('variant', ['J2', 'J3'])
def test_a_stage1_run_serves_every_variant(stage1, variant):
    """The J4 run restored as J2 / J3 is the same network: same detections, same ResNet maps."""
    detector, checkpoint = stage1
    model_dir = os.path.dirname(os.path.dirname(checkpoint))
    converted, config, _ = loading.restore_detector(model_dir, variant=variant)
    assert converted.variant == config.variant == variant
    assert len(converted.trunk.weights) != len(detector.trunk.weights)
    images = tf.random.uniform([2, IMAGE, IMAGE, 3], 0, 255, seed=3)
    original, split = detector(images, training=False), converted(images, training=False)
    np.testing.assert_allclose(split['class_logits'], original['class_logits'], atol=1e-5)
    np.testing.assert_allclose(split['box_outputs'], original['box_outputs'], atol=1e-5)
    level = f'C{converted.shared_level}'
    reference = detector.trunk(images, training=False)
    reference = {**reference, **detector.rest(reference['C4'], training=False)}
    np.testing.assert_allclose(tf.cast(split['shared_features'], tf.float32),
                               tf.cast(reference[level], tf.float32), atol=1e-5)
