"""The detector: shapes per variant, the shared trunk, post-processing, and weight loading."""

import numpy as np
import pytest
import tensorflow as tf

from ps_tf.models import backbone
from ps_tf.models.postprocess import DetectionGenerator
from ps_tf.models.retinanet import build_detector
from ps_tf.ops.anchors import AnchorConfig, BoxCoder, anchors_per_level, generate_anchors

IMAGE = 96


@pytest.mark.parametrize('variant, channels, stride', [('J2', 256, 4), ('J3', 512, 8),
                                                       ('J4', 1024, 16)])
def test_outputs_per_variant(variant, channels, stride):
    model = build_detector(variant)
    outputs = model(tf.zeros([2, IMAGE, IMAGE, 3]), training=False)
    num_anchors = sum(anchors_per_level(AnchorConfig(), IMAGE))
    assert outputs['class_logits'].shape == (2, num_anchors)
    assert outputs['box_outputs'].shape == (2, num_anchors, 4)
    side = IMAGE // stride
    assert outputs['shared_features'].shape == (2, side, side, channels)
    # Untrained, every anchor starts near the class prior 0.01.
    np.testing.assert_allclose(tf.sigmoid(outputs['class_logits']).numpy().mean(), 0.01,
                               rtol=0.2)


def test_trunk_and_rest_hold_exactly_one_resnet50():
    trunk, rest = backbone.split_resnet50('J3')
    full = backbone.resnet50()
    ids = {id(v) for v in trunk.weights} | {id(v) for v in rest.weights}
    assert len(trunk.weights) + len(rest.weights) == len(full.weights) == len(ids)


def test_pyramid_levels_have_the_anchor_grid_sizes():
    model = build_detector('J3')
    stages = {**model.trunk(tf.zeros([1, 100, 100, 3])), }
    stages.update(model.rest(stages['C3']))
    pyramid = model.fpn({k: stages[k] for k in ('C3', 'C4', 'C5')})
    config = AnchorConfig()
    for level in range(3, 8):
        side = config.feature_size(100, level)
        assert pyramid[f'P{level}'].shape == (1, side, side, 256)


def test_detection_generator_decodes_keeps_best_and_suppresses_duplicates():
    config = AnchorConfig()
    anchors = generate_anchors(config, 64)
    n = len(anchors)
    logits = np.full((1, n), -10.0, np.float32)
    codes = np.zeros((1, n, 4), np.float32)
    logits[0, 100] = 3.0                  # a confident person at anchor 100
    logits[0, 101] = 2.0                  # same place, ratio 3 not 2: IoU 0.69, suppressed
    far = (6 * 8 + 5) * 9                 # P3 row 6, column 5, scale 0, ratio 1: far away
    logits[0, far] = 1.0                  # a lower-scored one
    generator = DetectionGenerator(anchor_config=config, score_threshold=0.5, nms_iou=0.5)
    out = generator(tf.constant(logits), tf.constant(codes), 64)
    boxes, scores, count = (out['detection_boxes'][0].numpy(), out['detection_scores'][0].numpy(),
                            int(out['num_detections'][0]))
    assert _iou(anchors[100], anchors[101]) > 0.5
    assert count == 2
    np.testing.assert_allclose(scores[0], 1 / (1 + np.exp(-3.0)), rtol=1e-6)
    np.testing.assert_allclose(boxes[0], np.clip(anchors[100], 0, 64), atol=1e-4)
    np.testing.assert_allclose(boxes[1], np.clip(anchors[far], 0, 64), atol=1e-4)
    assert np.all(scores[count:] == 0)
    # An image resized to 64 x 40 inside the padded square: the far box (rows 36-68) lies mostly
    # in the padding below row 40 and is dropped; the other is clipped to the image.
    out = generator(tf.constant(logits), tf.constant(codes), 64, tf.constant([[40.0, 64.0]]))
    assert int(out['num_detections'][0]) == 1
    assert float(out['detection_boxes'][0, 0, 2]) <= 40.0


def test_detection_generator_applies_box_codes():
    config = AnchorConfig()
    anchors = generate_anchors(config, 64)
    logits = np.full((1, len(anchors)), -10.0, np.float32)
    logits[0, 40] = 5.0
    target = np.array([[10.0, 12.0, 50.0, 30.0]], np.float32)
    codes = np.zeros((1, len(anchors), 4), np.float32)
    codes[0, 40] = BoxCoder().encode(target, anchors[40:41]).numpy()[0]
    out = DetectionGenerator(anchor_config=config)(tf.constant(logits), tf.constant(codes), 64)
    np.testing.assert_allclose(out['detection_boxes'][0, 0], target[0], atol=1e-3)


def _iou(a, b):
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    area = lambda x: (x[2] - x[0]) * (x[3] - x[1])
    return inter / (area(a) + area(b) - inter)


def test_backbone_loads_a_local_weights_file(tmp_path):
    source = backbone.resnet50()
    path = str(tmp_path / 'resnet50.h5')
    source.save_weights(path)
    loaded = backbone.resnet50(weights=path)
    x = tf.random.uniform([1, 64, 64, 3])
    np.testing.assert_allclose(loaded(x), source(x), atol=1e-5)
    model = build_detector('J4', weights=path, freeze_batch_norm=True)
    frozen = [layer for layer in model.trunk.layers[-1].layers
              if isinstance(layer, tf.keras.layers.BatchNormalization)]
    assert frozen and not any(layer.trainable for layer in frozen)


def test_backbone_weight_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.h5'):
        backbone.resnet50(weights=str(tmp_path / 'missing.h5'))
    wrong = tf.keras.Sequential([tf.keras.layers.Dense(3, input_shape=(2,))])
    path = str(tmp_path / 'wrong.h5')
    wrong.save_weights(path)
    with pytest.raises(ValueError, match='wrong.h5'):
        backbone.resnet50(weights=path)
    with pytest.raises(ValueError, match='unknown variant'):
        build_detector('J5')
    # The synthetic preset's 'pretrained' is a run's own pretraining; only train.py resolves it.
    with pytest.raises(ValueError, match=r'train.py resolves to <model_dir>/pretrain'):
        backbone.resnet50(weights='pretrained')


def test_detect_refuses_non_square_input():
    model = build_detector('J4')
    with pytest.raises(ValueError, match='square'):
        model.detect(tf.zeros([1, 64, 96, 3]))


def test_head_batch_norm_statistics_are_per_level():
    # Shared convolutions, but each level keeps its own batch-norm statistics: a level whose
    # activations are 10x larger must not shift the statistics another level is normalised with.
    from ps_tf.models.heads import RetinaNetHead
    head = RetinaNetHead(anchors_per_location=1, filters=8, num_convs=2, use_batch_norm=True)
    rng = np.random.default_rng(0)
    pyramid = {f'P{level}': tf.constant(rng.normal(size=(2, 4, 4, 8)) * (1 + 9 * (level == 7)),
                                        tf.float32) for level in range(3, 8)}
    head(pyramid, training=True)
    assert len(head.class_norms) == 5 and len(head.box_norms) == 5
    # One training call moves a moving variance from 1 to 0.99 + 0.01 * (its batch variance).
    batch_variance = {level: (head.class_norms[f'P{level}'][0].moving_variance.numpy() - 0.99)
                      / 0.01 for level in range(3, 8)}
    assert np.mean(batch_variance[7]) > 20 * np.mean(batch_variance[3])
    # Each level's statistics are its own activations' (the shared first convolution applied to
    # that level alone; 5 % covers the fused kernel's unbiased n / (n - 1) = 32 / 31).
    for level in range(3, 8):
        own = head.class_convs[0](pyramid[f'P{level}']).numpy()
        np.testing.assert_allclose(batch_variance[level], np.var(own, axis=(0, 1, 2)), rtol=0.05,
                                   err_msg=f'P{level}')
