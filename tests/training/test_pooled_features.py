"""Pooled-feature TFRecords: round trip, atomic shards and resume, manifest, identity labels."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from ps_tf.data.pooled import records as pooled_records
from ps_tf.data.pooled import index as pooled_index
from ps_tf.data.pooled import manifest as pooled_manifest

SHAPE = (4, 2, 8)


def _boxes(rng: np.random.Generator, dataset: str, person_ids: list[int], first_image: int = 0):
    return [pooled_records.PooledBox(
        feature=rng.normal(0, 3, SHAPE).astype(np.float32), identity=person_id, dataset=dataset,
        image_name=f'{dataset}_{first_image + i:04d}.jpg',
        box=np.array([10.25, 20.5, 40.125 + i, 123.456789012345 + i]))
        for i, person_id in enumerate(person_ids)]


def _writer(directory, num_shards=2, checkpoint='ckpt-7', **kwargs):
    identity_map = pooled_manifest.IdentityMap.from_person_ids(
        {'prw': [1, 2, 5], 'cuhk_sysu': [1, 3, 2]})
    settings = dict(num_shards=num_shards, identity_map=identity_map, variant='J3',
                    pooled_shape=SHAPE, source_checkpoint=checkpoint)
    settings.update(kwargs)
    return pooled_records.ShardedWriter(str(directory), **settings)


def _crashing(boxes, after: int):
    for i, box in enumerate(boxes):
        if i == after:
            raise RuntimeError('simulated crash')
        yield box


def test_identity_map_is_sorted_unique_and_deterministic():
    first = pooled_manifest.IdentityMap.from_person_ids(
        {'prw': [2, 1, -1, 1], 'cuhk_sysu': [3, 1, -1]})
    second = pooled_manifest.IdentityMap.from_person_ids({'cuhk_sysu': [1, 3], 'prw': [1, 2]})
    assert first == second
    assert first.pairs == (('cuhk_sysu', 1), ('cuhk_sysu', 3), ('prw', 1), ('prw', 2))
    assert [first.label('cuhk_sysu', 1), first.label('prw', 1)] == [0, 2]   # same raw id
    with pytest.raises(ValueError, match="person_id=-1"):
        first.label('prw', -1)
    with pytest.raises(ValueError, match='>= 0'):
        pooled_manifest.IdentityMap([('prw', -3)])


def test_round_trip_preserves_values_labels_names_and_boxes(tmp_path):
    rng = np.random.default_rng(0)
    shard_0 = _boxes(rng, 'cuhk_sysu', [1, -1, 3, 1]) + _boxes(rng, 'prw', [1])
    shard_1 = _boxes(rng, 'prw', [2, 5, -1, 1], first_image=10)
    writer = _writer(tmp_path)
    assert [writer.write_shard(0, shard_0), writer.write_shard(1, shard_1)] == [4, 3]
    manifest = writer.finalize()
    labelled = [box for box in shard_0 + shard_1 if box.identity != -1]
    records = list(pooled_records.pooled_dataset(manifest).as_numpy_iterator())
    assert len(records) == len(labelled) == manifest.num_records == 7
    for box, record in zip(labelled, records):
        assert record['feature'].dtype == np.float32 and record['feature'].shape == SHAPE
        np.testing.assert_array_equal(record['feature'], box.feature.astype(np.float16))
        assert record['label'] == manifest.identity_map.label(box.dataset, box.identity)
        assert record['person_id'] == box.identity
        assert record['dataset'].decode() == box.dataset
        assert record['image_name'].decode() == box.image_name
        np.testing.assert_array_equal(record['box'], box.box)   # float64, exact
    # Labels: cuhk_sysu 1, 2, 3, then prw 1, 2, 5; the same raw id 1 gets two labels.
    assert manifest.identity_counts == (2, 0, 1, 2, 1, 1)
    reread = pooled_manifest.read_manifest(str(tmp_path))
    assert reread == manifest and reread.pooled_shape == SHAPE and reread.dtype == 'float16'
    assert sorted(os.listdir(tmp_path)) == [
        'manifest.json', 'pooled-00000-of-00002.index.json', 'pooled-00000-of-00002.tfrecord',
        'pooled-00001-of-00002.index.json', 'pooled-00001-of-00002.tfrecord']


def test_parse_single_and_batched_and_refuse_other_shape(tmp_path):
    rng = np.random.default_rng(1)
    box = _boxes(rng, 'prw', [5])[0]
    serialized = pooled_records.encode_pooled_example(box, label=4, dtype='float32')
    single = pooled_records.parse_pooled_example(tf.constant(serialized), SHAPE, 'float32')
    batch = pooled_records.parse_pooled_example(tf.constant([serialized] * 3), SHAPE, 'float32')
    np.testing.assert_array_equal(single['feature'], box.feature)
    assert single['label'].dtype == tf.int32 and int(single['label']) == 4
    assert batch['feature'].shape == (3,) + SHAPE and batch['box'].shape == (3, 4)
    with pytest.raises(tf.errors.InvalidArgumentError, match='shape differs'):
        pooled_records.parse_pooled_example(tf.constant(serialized), (2, 4, 8), 'float32')
    with pytest.raises(tf.errors.InvalidArgumentError, match='dtype differs'):
        pooled_records.parse_pooled_example(tf.constant(serialized), SHAPE, 'float16')


def test_invalid_boxes_are_refused(tmp_path):
    writer = _writer(tmp_path)
    box = _boxes(np.random.default_rng(2), 'prw', [1])[0]
    too_large = pooled_records.PooledBox(box.feature * 0 + 1e5, 1, 'prw', 'a.jpg', box.box)
    with pytest.raises(ValueError, match='not finite in float16'):
        writer.write_shard(0, [too_large])
    with pytest.raises(ValueError, match='differs from the run'):
        writer.write_shard(0, [pooled_records.PooledBox(box.feature[:2], 1, 'prw', 'a', box.box)])
    with pytest.raises(ValueError, match='not in the identity map'):
        writer.write_shard(0, [pooled_records.PooledBox(box.feature, 9, 'prw', 'a', box.box)])
    assert writer.completed_shards() == []


def test_crash_mid_shard_leaves_no_final_file_and_resume_rewrites_only_missing(tmp_path):
    rng = np.random.default_rng(3)
    shards = [_boxes(rng, 'prw', [1, 2, 5], first_image=10 * i) for i in range(3)]
    writer = _writer(tmp_path, num_shards=3)
    writer.write_shard(0, shards[0])
    with pytest.raises(RuntimeError, match='simulated crash'):
        writer.write_shard(1, _crashing(shards[1], after=2))
    names = os.listdir(tmp_path)
    assert 'pooled-00001-of-00003.tfrecord' not in names
    assert any(name.startswith('pooled-00001-of-00003.tfrecord.tmp-') for name in names)
    assert writer.completed_shards() == [0]
    with pytest.raises(ValueError, match='"complete" is false'):
        pooled_manifest.read_manifest(str(tmp_path))
    # A crash between the index and the shard rename: the index alone is not a complete shard.
    os.rename(tmp_path / 'pooled-00000-of-00003.tfrecord', tmp_path / 'saved')
    assert writer.completed_shards() == []
    os.rename(tmp_path / 'saved', tmp_path / 'pooled-00000-of-00003.tfrecord')

    # A crash while the index was written (ps_tf.atomic's hidden temporary) is cleaned up too.
    (tmp_path / '.pooled-00001-of-00003.index.0123abcd.tmp.json').write_text('{')
    shard_0_time = os.stat(tmp_path / 'pooled-00000-of-00003.tfrecord').st_mtime_ns
    resumed = _writer(tmp_path, num_shards=3)
    assert resumed.missing_shards() == [1, 2]
    with pytest.raises(ValueError, match='already complete'):
        resumed.write_shard(0, shards[0])
    with pytest.raises(ValueError, match='2 of 3 shards are not written'):
        resumed.finalize()
    for shard_index in resumed.missing_shards():
        resumed.write_shard(shard_index, shards[shard_index])
    manifest = resumed.finalize()
    assert not [name for name in os.listdir(tmp_path) if '.tmp' in name]
    assert os.stat(tmp_path / 'pooled-00000-of-00003.tfrecord').st_mtime_ns == shard_0_time
    assert manifest.num_records == 9 and manifest.identity_counts[3:] == (3, 3, 3)


def test_resume_with_other_settings_is_refused(tmp_path):
    _writer(tmp_path, num_shards=3)
    with pytest.raises(ValueError, match=r'"source_checkpoint" is ckpt-7 but this run has ckpt-8'):
        _writer(tmp_path, num_shards=3, checkpoint='ckpt-8')
    with pytest.raises(ValueError, match='"num_shards" is 3'):
        _writer(tmp_path, num_shards=4)


def test_resume_accepts_the_relative_checkpoint_of_older_versions(tmp_path, monkeypatch):
    """Older versions recorded the stage-1 checkpoint as given (relative to where train.py ran);
    resuming from the same directory with its absolute path is the same run."""
    monkeypatch.chdir(tmp_path)
    _writer(tmp_path / 'pooled', checkpoint='run/checkpoints/ckpt-7')
    _writer(tmp_path / 'pooled', checkpoint=str(tmp_path / 'run' / 'checkpoints' / 'ckpt-7'))
    with pytest.raises(ValueError, match='"source_checkpoint"'):
        _writer(tmp_path / 'pooled', checkpoint=str(tmp_path / 'other' / 'ckpt-7'))


def test_manifest_mismatch_names_file_field_expected_and_found(tmp_path):
    writer = _writer(tmp_path, num_shards=1)
    writer.write_shard(0, _boxes(np.random.default_rng(4), 'prw', [1, 1]))
    manifest = pooled_manifest.read_manifest(str(writer.finalize().directory))
    pooled_manifest.check_manifest(manifest, variant='J3', pooled_shape=SHAPE, dtype='float16',
                                   source_checkpoint='ckpt-7')
    path = os.path.join(str(tmp_path), 'manifest.json')
    with pytest.raises(ValueError) as error:
        pooled_manifest.check_manifest(manifest, variant='J4')
    assert str(error.value).startswith(f'{path}: field "variant" is \'J3\' but \'J4\' is expected')
    with pytest.raises(ValueError, match=r'"pooled_shape" is \[4, 2, 8\] but \[16, 8, 1024\]'):
        pooled_manifest.check_manifest(manifest, variant='J3', pooled_shape=(16, 8, 1024))
    with pytest.raises(ValueError, match='no pooled-feature manifest'):
        pooled_manifest.read_manifest(str(tmp_path / 'elsewhere'))


def test_record_reader_random_access_and_index_checks(tmp_path):
    rng = np.random.default_rng(5)
    boxes = _boxes(rng, 'cuhk_sysu', [1, 2, 3, 1, 2, 3, 1])
    writer = _writer(tmp_path, num_shards=2)
    for shard_index, chunk in enumerate(pooled_records.split_into_shards(boxes, 4)):
        writer.write_shard(shard_index, chunk)
    manifest = writer.finalize()
    index = pooled_index.load_record_index(manifest)
    np.testing.assert_array_equal(index.label, [0, 1, 2, 0, 1, 2, 0])
    np.testing.assert_array_equal(index.record_ids([0, 0, 0, 2], [0, 1, 2, 1]), [0, 3, 6, 5])
    reader = pooled_index.RecordReader(index, max_open_files=1)
    order = np.array([6, 0, 5, 3])
    parsed = pooled_records.parse_pooled_example(tf.constant(list(reader.read(order))), SHAPE)
    for position, record in enumerate(order):
        np.testing.assert_array_equal(parsed['feature'][position],
                                      boxes[record].feature.astype(np.float16))
    reader.close()
    with open(tmp_path / 'pooled-00001-of-00002.tfrecord', 'ab') as f:
        f.write(b'garbage')
    with pytest.raises(ValueError, match='bytes, but the manifest lists'):
        pooled_index.load_record_index(manifest)


def test_split_into_shards_is_deterministic_and_complete():
    items = [f'img_{i}.jpg' for i in range(10)]
    shards = pooled_records.split_into_shards(items, items_per_shard=4)
    assert shards == pooled_records.split_into_shards(list(items), 4)
    assert [len(shard) for shard in shards] == [3, 4, 3]
    assert sum(shards, []) == items
    assert pooled_records.split_into_shards([], 4) == [[]]
    assert pooled_records.shard_name(3, 10) == 'pooled-00003-of-00010.tfrecord'
