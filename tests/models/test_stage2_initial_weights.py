"""Stage 2's network starts from the detector's stages or from another ResNet-50's
(`reid.initial_weights`), e.g. the pretraining the detector started from."""

import numpy as np
import pytest
import tensorflow as tf

from ps_tf.models import stage2
from ps_tf.models.backbone import resnet50, split_resnet50
from ps_tf.models.retinanet import build_detector


@pytest.fixture(scope='module')
def weights_file(tmp_path_factory):
    """A ResNet-50 weights file unlike a fresh model's (what the pretraining stage writes)."""
    tf.keras.utils.set_random_seed(7)
    model = resnet50('none')
    path = str(tmp_path_factory.mktemp('pretrain') / 'resnet50.h5')
    model.save_weights(path)
    return path


@pytest.fixture(scope='module')
def detector():
    tf.keras.utils.set_random_seed(1)
    model = build_detector('J3', head_batch_norm=True)
    model(tf.zeros([1, 64, 64, 3]), training=False)
    return model


def test_the_branch_starts_from_the_weights_file_not_the_detector(weights_file, detector):
    _, rest = split_resnet50('J3', weights=weights_file)
    from_file = stage2.build_stage2_model('J3', detector, 8, False, 'float32',
                                          initial_weights=weights_file)
    from_detector = stage2.build_stage2_model('J3', detector, 8, False, 'float32')
    for source, target, detector_weight in zip(rest.weights, from_file.rest.weights,
                                               detector.rest.weights):
        np.testing.assert_array_equal(source.numpy(), target.numpy())
    kernel = [i for i, w in enumerate(rest.weights) if 'conv5_block3_3_conv/kernel' in w.name][0]
    assert not np.allclose(from_file.rest.weights[kernel].numpy(),
                           from_detector.rest.weights[kernel].numpy())
    np.testing.assert_array_equal(from_detector.rest.weights[kernel].numpy(),
                                  detector.rest.weights[kernel].numpy())


def test_the_disjoint_resnet_starts_from_the_weights_file(weights_file, detector):
    embedder = stage2.build_stage2_model('Disj', detector, 8, False, 'float32',
                                         initial_weights=weights_file)
    source = resnet50(weights_file)
    for name in ('conv1_conv', 'conv4_block2_2_conv'):
        np.testing.assert_array_equal(source.get_layer(name).kernel.numpy(),
                                      embedder.resnet.get_layer(name).kernel.numpy())


def test_a_missing_weights_file_is_named(detector, tmp_path):
    missing = str(tmp_path / 'nothing.h5')
    with pytest.raises(FileNotFoundError, match='nothing.h5'):
        stage2.build_stage2_model('J3', detector, 8, False, 'float32', initial_weights=missing)


def test_a_weights_file_of_another_network_is_refused_naming_the_layer(detector, tmp_path):
    other = tf.keras.Sequential([tf.keras.layers.Dense(3, name='conv4_block1_1_conv',
                                                       input_shape=(5,))])
    path = str(tmp_path / 'other.h5')
    other.save_weights(path)
    with pytest.raises(ValueError, match=r'other\.h5.*conv4_block1_1_conv|other\.h5 has no '):
        stage2.build_stage2_model('J3', detector, 8, False, 'float32', initial_weights=path)


def test_a_file_that_is_not_hdf5_is_refused_naming_it(detector, tmp_path):
    path = tmp_path / 'notes.h5'
    path.write_text('not weights')
    with pytest.raises(ValueError, match='notes.h5'):
        stage2.build_stage2_model('J3', detector, 8, False, 'float32', initial_weights=str(path))
