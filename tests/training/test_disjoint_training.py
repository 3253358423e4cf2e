"""The disjoint baseline's stage 2: ground-truth crops as uint8 records, one training step per
phase of its ResNet-50 embedder (initialised from the detector's), validation through the search
protocol code, and loading it back as a `DisjointModel`."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from ps_tf import config as config_lib
from ps_tf.data.pooled import manifest as pooled_manifest
from ps_tf.data.pooled import records as pooled_records
from ps_tf.models import factory, loading
from ps_tf.models.disjoint import DisjointModel
from ps_tf.training import feature_pooling
from ps_tf.training import reid as reid_training
from stage1_fixture import make_stage1_run

DATASET = 'synthetic_person_search/tiny'
IMAGE = 128   # the tiny images are 128 x 96: the model input is the image itself, padded


@pytest.fixture(scope='module')
def crops_run(tmp_path_factory, tiny_synthetic_data_dir):
    model_dir = str(tmp_path_factory.mktemp('disj'))
    make_stage1_run(model_dir, image_size=IMAGE)
    detector, _, checkpoint = loading.restore_detector(model_dir)
    pooled_dir = os.path.join(model_dir, 'pooled')
    manifest = feature_pooling.pool_features(None, 'Disj', IMAGE, pooled_dir, [DATASET],
                                             checkpoint, dtype='uint8', images_per_shard=4,
                                             data_dir=tiny_synthetic_data_dir)
    return model_dir, pooled_dir, detector, manifest


def _bilinear_crop(image: np.ndarray, box, size=(256, 128)) -> np.ndarray:
    """The reference crop: bilinear samples of the zero-padded IMAGE x IMAGE square on
    `tf.image.crop_and_resize`'s grid (corners at box * (S - 1) / S), in numpy."""
    padded = np.zeros((IMAGE, IMAGE, 3), np.float64)
    padded[:image.shape[0], :image.shape[1]] = image
    x1, y1, x2, y2 = np.asarray(box, np.float64) * (IMAGE - 1) / IMAGE
    ys = y1 + np.arange(size[0]) * (y2 - y1) / (size[0] - 1)
    xs = x1 + np.arange(size[1]) * (x2 - x1) / (size[1] - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    y1i, x1i = np.minimum(y0 + 1, IMAGE - 1), np.minimum(x0 + 1, IMAGE - 1)
    top = padded[y0][:, x0] * (1 - wx) + padded[y0][:, x1i] * wx
    bottom = padded[y1i][:, x0] * (1 - wx) + padded[y1i][:, x1i] * wx
    return top * (1 - wy) + bottom * wy


def test_crops_are_the_pixels_of_the_box(crops_run, tiny_synthetic_data_dir):
    _, _, _, manifest = crops_run
    assert manifest.variant == 'Disj' and manifest.pooled_shape == (256, 128, 3)
    assert manifest.dtype == 'uint8' and manifest.num_records > 0
    images = {example['image/filename'].decode(): example['image'] for example in tfds.as_numpy(
        tfds.load(DATASET, split='train', data_dir=tiny_synthetic_data_dir))}
    for record in pooled_records.pooled_dataset(manifest).take(4).as_numpy_iterator():
        image = images[record['image_name'].decode()]
        assert max(image.shape[:2]) == IMAGE   # the model input is the image, unscaled
        crop, expected = record['feature'], _bilinear_crop(image, record['box'])
        assert crop.shape == (256, 128, 3) and np.array_equal(crop, np.round(crop))
        # Equal up to the uint8 rounding (and the box's float32 round trip).
        assert np.abs(crop - expected).max() <= 1.5 and np.abs(crop - expected).mean() < 0.6


def test_uint8_records_must_be_exact():
    box = pooled_records.PooledBox(feature=np.full((2, 2, 3), 0.5), identity=1, dataset='d',
                                   image_name='i', box=np.zeros(4))
    with pytest.raises(ValueError, match='integer values'):
        pooled_records.encode_pooled_example(box, 0, 'uint8')
    assert 'uint8' in pooled_manifest.STORAGE_DTYPES


@pytest.mark.slow   # a whole ResNet-50 on 256 x 128 crops, and a search validation
def test_disjoint_embedder_trains_one_step_per_phase_and_loads_back(
        crops_run, tmp_path, tiny_synthetic_data_dir):
    model_dir, pooled_dir, detector, _ = crops_run
    config = dataclasses.replace(
        config_lib.PRESETS['synthetic'].reid, embedding_dim=8, identities_per_batch=2,
        samples_per_identity=2, semi_hard_epochs=1, hard_epochs=1, steps_per_epoch=1,
        validation=DATASET, log_every=1, checkpoint_every=1,
        mixed_precision='float32', initial_weights='detector')
    output_dir = str(tmp_path / 'reid')
    trainer = reid_training.ReidTrainer(config, output_dir, pooled_dir, detector, IMAGE,
                                        data_dir=tiny_synthetic_data_dir)
    assert trainer.variant == 'Disj'
    # The embedder's ResNet-50 starts as the detector's, in its own variables.
    resnet = trainer.branch.resnet
    detector_layers = factory.layers_with_weights(detector.trunk)
    for name in ('conv1_conv', 'conv2_block1_1_bn'):
        for mine, theirs in zip(resnet.get_layer(name).weights, detector_layers[name].weights):
            np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(
        resnet.get_layer('conv5_block3_3_conv').kernel,
        factory.layers_with_weights(detector.rest)['conv5_block3_3_conv'].kernel)
    assert not {id(v) for v in trainer.branch.trainable_variables} & {
        id(v) for v in detector.weights}
    metrics = trainer.train()
    assert trainer.step == 2 and set(trainer._steps) == {'semi_hard', 'hard'}
    assert 0.0 <= metrics['mAP'] <= 1.0 and metrics['gallery_size'] == 5
    assert isinstance(trainer.joint_model(), DisjointModel)

    loaded, image_size, _ = loading.load_joint_model(output_dir)
    assert isinstance(loaded, DisjointModel) and image_size == IMAGE
    crops = tf.random.uniform([3, 256, 128, 3], 0.0, 255.0, seed=1)
    np.testing.assert_allclose(loaded.embedder.embed(crops), trainer.branch.embed(crops),
                               atol=1e-5)
