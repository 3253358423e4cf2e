"""The garden layout (the Model Garden's ResNet-50 and pyramid) works wherever the keras layout
does: the variant split, re-splitting a trained detector, the re-ID branch and the disjoint
embedder; old configs keep the keras layout and the pedestrian anchors."""

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from ps_tf import config as config_lib
from ps_tf.models import backbone, factory, garden, stage2
from ps_tf.models.disjoint import DISJOINT

SIZE = 64


def garden_config(**changes) -> config_lib.DetectionConfig:
    return dataclasses.replace(config_lib.PRESETS['paper'].detection, image_size=SIZE, **changes)


def test_garden_trunk_and_rest_hold_one_resnet50_v1_5():
    trunk, rest = backbone.split_resnet50('J3', layout='garden')
    full = garden.garden_resnet50()
    assert len(trunk.weights) + len(rest.weights) == len(full.weights)
    assert not any('bias' in v.name for v in full.weights)                  # convs without bias
    # v1.5: the stride is on the 3x3 convolution.
    assert full.get_layer('conv3_block1_2_conv').strides == (2, 2)
    assert full.get_layer('conv3_block1_1_conv').strides == (1, 1)
    stages = trunk(tf.zeros([1, SIZE, SIZE, 3]))
    stages.update(rest(stages['C3']))
    assert [stages[f'C{k}'].shape for k in (2, 3, 4, 5)] == [
        (1, 16, 16, 256), (1, 8, 8, 512), (1, 4, 4, 1024), (1, 2, 2, 2048)]
    assert isinstance(trunk.get_layer('resnet_preprocess'), garden.GardenPreprocess)


def test_the_garden_layout_takes_no_keras_weights():
    with pytest.raises(ValueError, match='init_checkpoint'):
        backbone.split_resnet50('J3', weights='imagenet', layout='garden')
    with pytest.raises(ValueError, match='unknown layout'):
        backbone.split_resnet50('J3', layout='caffe')


def test_a_garden_detector_resplits_and_initialises_the_reid_networks():
    config = garden_config(variant='J3')
    detector = factory.built_detector(config)
    assert detector.layout == 'garden' and detector.fpn.garden
    assert detector.detection_generator.anchor_config.aspect_ratios == (2.0, 1.0, 0.5)
    images = tf.random.uniform([1, SIZE, SIZE, 3], 0, 255, seed=0)
    before = detector(images, training=False)
    as_j4 = factory.with_variant(detector, config, 'J4')
    after = as_j4(images, training=False)
    np.testing.assert_allclose(before['class_logits'], after['class_logits'], atol=1e-5)

    branch = stage2.build_stage2_model('J4', as_j4, 8, False, 'float32')
    for source, target in zip(as_j4.rest.weights, branch.rest.weights):
        np.testing.assert_array_equal(source.numpy(), target.numpy())
    embedder = stage2.build_stage2_model(DISJOINT, detector, 8, False, 'float32')
    assert isinstance(embedder.preprocess, garden.GardenPreprocess)
    ours = {**factory.layers_with_weights(detector.trunk),
            **factory.layers_with_weights(detector.rest)}
    for name in ('conv1_conv', 'conv5_block3_3_bn'):
        for source, target in zip(ours[name].weights, embedder.resnet.get_layer(name).weights):
            np.testing.assert_array_equal(source.numpy(), target.numpy())


def test_a_config_saved_before_the_layouts_loads_as_keras_with_pedestrian_anchors(tmp_path):
    saved = dataclasses.asdict(config_lib.PRESETS['synthetic'].detection)
    for name in ('layout', 'init_checkpoint', 'aspect_ratios'):
        del saved[name]
    (tmp_path / 'config.json').write_text(json.dumps(saved))
    config = config_lib.load_detection_config(str(tmp_path))
    assert (config.layout, config.init_checkpoint, config.aspect_ratios) == ('keras', '', '1,2,3')
    assert factory.anchor_config(config).aspect_ratios == (1.0, 2.0, 3.0)


@pytest.mark.parametrize('text', ['', 'tall', '1,-2', '1,,2'])
def test_aspect_ratios_must_be_positive_numbers(text):
    with pytest.raises(ValueError, match='aspect_ratios'):
        factory.aspect_ratios(text)
