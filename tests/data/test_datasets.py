"""Tests of ps_tf.data.datasets: specs, the mixed training dataset, eval dataset, build errors."""

import collections

import numpy as np
import pytest
import tensorflow as tf

from ps_tf.data import datasets
from ps_tf.data.datasets import DatasetWeight
from ps_tf.ops.anchors import AnchorConfig, generate_anchors

TINY = 'synthetic_person_search/tiny'
SIZE = 64


def test_parse_dataset_spec():
    spec = 'cuhk_sysu:1, prw:2.5,synthetic_person_search/detection_only:0.5,mot17det'
    assert datasets.parse_dataset_spec(spec) == [
        ('cuhk_sysu', 1.0), ('prw', 2.5), ('synthetic_person_search/detection_only', 0.5),
        ('mot17det', 1.0)]
    entry = datasets.parse_dataset_spec('prw:0,cuhk_sysu:1')[0]
    assert entry.name == 'prw' and entry.weight == 0.0


@pytest.mark.parametrize('spec, message', [
    ('', 'empty'),
    ('  ', 'empty'),
    ('cuhk_sysu:1,,prw:1', 'no dataset name'),
    (':1', 'no dataset name'),
    ('cuhk_sysu:abc', 'not a number'),
    ('cuhk_sysu:', 'not a number'),
    ('cuhk_sysu:nan', 'finite'),
    ('cuhk_sysu:-1', '>= 0'),
    ('cuhk_sysu:1,cuhk_sysu:2', 'twice'),
    ('cuhk_sysu:0,prw:0', 'all weights are zero'),
])
def test_parse_dataset_spec_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        datasets.parse_dataset_spec(spec)


def test_train_dataset_from_two_datasets(tiny_synthetic_data_dir):
    batch_size = 3
    dataset = datasets.detection_train_dataset(
        [DatasetWeight(TINY, 1.0), DatasetWeight(TINY, 3.0)], SIZE, batch_size,
        data_dir=tiny_synthetic_data_dir, seed=0)
    num_anchors = len(generate_anchors(AnchorConfig(), SIZE))
    images, targets = dataset.element_spec
    assert images.shape == (batch_size, SIZE, SIZE, 3)
    assert targets['class_targets'].shape == (batch_size, num_anchors)
    assert targets['box_targets'].shape == (batch_size, num_anchors, 4)
    assert targets['num_positives'].shape == (batch_size,)
    # 8 train images, 4 batches of 3: the data repeats rather than running dry.
    batches = list(dataset.take(4))
    assert len(batches) == 4
    positives = np.concatenate([t['num_positives'].numpy() for _, t in batches])
    assert np.all(positives >= 0) and positives.max() > 0
    assert 0.0 <= float(tf.reduce_min(batches[0][0])) and float(tf.reduce_max(batches[0][0])) > 1.0


def test_train_dataset_is_reproducible_with_a_seed(tiny_synthetic_data_dir):
    def first_batches(seed):
        dataset = datasets.detection_train_dataset(f'{TINY}:1', SIZE, 4,
                                                   data_dir=tiny_synthetic_data_dir, seed=seed)
        return [batch for batch in dataset.take(2)]

    a, b = first_batches(7), first_batches(7)
    tf.nest.map_structure(np.testing.assert_array_equal, a, b)


def test_parse_dataset_list_split_spec_and_manual_dir():
    assert datasets.parse_dataset_list(' prw, cuhk_sysu,prw') == ['cuhk_sysu', 'prw']
    with pytest.raises(ValueError, match='no re-ID dataset'):
        datasets.parse_dataset_list(' , ')
    assert datasets.parse_split_spec('synthetic_person_search/tiny:gallery') == (
        'synthetic_person_search/tiny', 'gallery')
    assert datasets.parse_split_spec('cuhk_sysu:train[:10%]') == ('cuhk_sysu', 'train[:10%]')
    for bad in ('cuhk_sysu', ':gallery', 'cuhk_sysu:'):
        with pytest.raises(ValueError, match='name.*:split'):
            datasets.parse_split_spec(bad)
    assert datasets.parse_manual_dir('/data/cuhk') == '/data/cuhk'
    assert datasets.parse_manual_dir(None) is None
    assert datasets.parse_manual_dir('cuhk_sysu=/d/c, prw=/d/p=x') == {
        'cuhk_sysu': '/d/c', 'prw': '/d/p=x'}
    with pytest.raises(ValueError, match=r"entry '/d/p' is not name=path"):
        datasets.parse_manual_dir('cuhk_sysu=/d/c,/d/p')


def test_mixing_respects_weights(tiny_synthetic_data_dir):
    def filenames(split):
        return datasets.load_split(TINY, split, tiny_synthetic_data_dir).map(
            lambda e: e['image/filename']).repeat()

    train_names = {n.numpy() for n in filenames('train').take(8)}
    mixed = datasets.mix_datasets([filenames('train'), filenames('gallery')], [1.0, 0.0], seed=1)
    assert {n.numpy() for n in mixed.take(40)} <= train_names

    tagged = [tf.data.Dataset.from_tensors(i).repeat() for i in range(2)]
    counts = collections.Counter(
        int(i) for i in datasets.mix_datasets(tagged, [3.0, 1.0], seed=2).take(800))
    assert 0.68 < counts[0] / 800 < 0.82


def test_mix_datasets_rejects_bad_weights():
    one = tf.data.Dataset.range(3)
    with pytest.raises(ValueError, match='one weight per dataset'):
        datasets.mix_datasets([one, one], [1.0])
    with pytest.raises(ValueError, match='not all zero'):
        datasets.mix_datasets([one, one], [0.0, 0.0])


def test_eval_dataset(tiny_synthetic_data_dir):
    dataset = datasets.detection_eval_dataset(TINY, 'gallery', SIZE, batch_size=2,
                                              data_dir=tiny_synthetic_data_dir, max_objects=8)
    batches = list(dataset)
    assert [len(images) for images, _ in batches] == [2, 2, 1]        # 5 gallery images, once
    images, labels = batches[0]
    assert images.shape == (2, SIZE, SIZE, 3)
    assert labels['gt_boxes'].shape == (2, 8, 4)
    assert labels['image_info'].shape == (2, 4, 2)
    names = np.concatenate([labels['filename'].numpy() for _, labels in batches])
    assert len(set(names)) == 5
    indices = np.concatenate([labels['protocol_index'].numpy() for _, labels in batches])
    assert sorted(indices) == list(range(5))


def test_unbuilt_manual_dataset_error(tmp_path):
    with pytest.raises(datasets.DatasetNotBuiltError,
                       match=r"'wider_pedestrian' is not built[\s\S]*tfds build "
                             r"tfds_builders/wider_pedestrian --manual_dir="):
        datasets.get_builder('wider_pedestrian', data_dir=str(tmp_path))
    with pytest.raises(datasets.DatasetNotBuiltError, match='cuhk_sysu'):
        datasets.detection_train_dataset('cuhk_sysu:1', SIZE, 2, data_dir=str(tmp_path))


def test_missing_split(tiny_synthetic_data_dir):
    with pytest.raises(ValueError, match='no split'):
        datasets.load_split(TINY, 'validation', tiny_synthetic_data_dir)


def test_manual_dataset_built_from_manual_dir_mapping(tmp_path):
    """A manual-download dataset is prepared from `manual_dir` (here its builder's dummy data)."""
    import pathlib

    import tfds_builders
    release = pathlib.Path(tfds_builders.__file__).parent / 'wider_pedestrian' / 'dummy_data'
    dataset = datasets.detection_train_dataset(
        'wider_pedestrian:1', SIZE, 2, data_dir=str(tmp_path),
        manual_dir={'wider_pedestrian': str(release)}, seed=0)
    images, targets = next(iter(dataset))
    assert images.shape == (2, SIZE, SIZE, 3)
    assert targets['class_weights'].shape[0] == 2
