"""Anchor generation, the box coder and the anchor labeler."""

import numpy as np
import pytest
import tensorflow as tf

from ps_tf.ops.anchor_labeler import AnchorLabeler, pairwise_iou
from ps_tf.ops.anchors import AnchorConfig, BoxCoder, anchors_per_level, generate_anchors


def test_anchor_counts_per_level_at_640():
    config = AnchorConfig()
    counts = anchors_per_level(config, 640)
    assert counts == [80 * 80 * 9, 40 * 40 * 9, 20 * 20 * 9, 10 * 10 * 9, 5 * 5 * 9]
    assert generate_anchors(config, 640).shape == (sum(counts), 4)


def test_odd_sizes_follow_resnet_ceil_division():
    config = AnchorConfig()
    assert [config.feature_size(100, level) for level in range(3, 8)] == [13, 7, 4, 2, 1]


def test_first_anchors_are_p3_scales_and_ratios_at_the_first_position():
    anchors = generate_anchors(AnchorConfig(), 64)
    first = anchors[:9]
    centres = np.stack([(first[:, 0] + first[:, 2]) / 2, (first[:, 1] + first[:, 3]) / 2], -1)
    np.testing.assert_allclose(centres, 4.0, atol=1e-5)
    heights, widths = first[:, 2] - first[:, 0], first[:, 3] - first[:, 1]
    np.testing.assert_allclose(heights / widths, [1, 2, 3] * 3, rtol=1e-5)
    np.testing.assert_allclose(np.sqrt(heights[:3] * widths[:3]), 32.0, rtol=1e-5)
    np.testing.assert_allclose(np.sqrt(heights[3] * widths[3]), 32 * 2**(1 / 3), rtol=1e-5)
    # The next position is one stride (8 px) to the right.
    np.testing.assert_allclose(anchors[9, 1] - anchors[0, 1], 8.0)


def test_box_coder_round_trip_and_known_code():
    coder = BoxCoder()
    anchors = tf.constant([[0.0, 0.0, 100.0, 50.0], [10.0, 10.0, 42.0, 42.0]])
    boxes = tf.constant([[10.0, 5.0, 110.0, 55.0], [0.0, 0.0, 64.0, 16.0]])
    codes = coder.encode(boxes, anchors)
    np.testing.assert_allclose(codes[0], [10 * 10 / 100, 10 * 5 / 50, 0.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(coder.decode(codes, anchors), boxes, atol=1e-3)


def test_pairwise_iou_known_values():
    a = tf.constant([[0.0, 0.0, 10.0, 10.0]])
    b = tf.constant([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    np.testing.assert_allclose(pairwise_iou(a, b), [[1.0, 50 / 150, 0.0]], rtol=1e-6)


ANCHORS = tf.constant([
    [0.0, 0.0, 10.0, 10.0],     # 0: exactly person A
    [0.0, 1.5, 10.0, 11.5],     # 1: IoU 0.74 with A
    [0.0, 3.0, 10.0, 13.0],     # 2: IoU 0.54 with A
    [0.0, 4.0, 10.0, 14.0],     # 3: IoU 0.43 with A: ignored band
    [0.0, 8.0, 10.0, 18.0],     # 4: IoU 0.11 with A: background
    [50.0, 50.0, 60.0, 60.0],   # 5: inside the crowd region
    [100.0, 100.0, 120.0, 140.0],  # 6: best (but weak) anchor of the small person B
])


def test_labeler_without_people_makes_every_anchor_background():
    targets = AnchorLabeler()(ANCHORS, tf.zeros([0, 4]), tf.zeros([0], tf.bool))
    np.testing.assert_array_equal(targets['class_targets'], np.zeros(7))
    np.testing.assert_array_equal(targets['class_weights'], np.ones(7))
    assert float(targets['num_positives']) == 0.0


def test_labeler_thresholds_forced_match_and_ignore_regions():
    gt = tf.constant([[0.0, 0.0, 10.0, 10.0],        # person A
                      [45.0, 45.0, 70.0, 70.0],      # crowd (ignore region)
                      [105.0, 100.0, 115.0, 106.0]])  # person B: IoU < 0.5 with every anchor
    ignore = tf.constant([False, True, False])
    targets = AnchorLabeler()(ANCHORS, gt, ignore)
    np.testing.assert_array_equal(targets['class_targets'], [1, 1, 1, 0, 0, 0, 1])
    np.testing.assert_array_equal(targets['class_weights'], [1, 1, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(targets['box_weights'], [1, 1, 1, 0, 0, 0, 1])
    assert float(targets['num_positives']) == 4.0
    coder = BoxCoder()
    np.testing.assert_allclose(coder.decode(targets['box_targets'][6:7], ANCHORS[6:7]),
                               gt[2:3], atol=1e-3)
    np.testing.assert_allclose(targets['box_targets'][0], [0, 0, 0, 0], atol=1e-6)
    np.testing.assert_array_equal(targets['box_targets'][3:6], np.zeros((3, 4)))


def test_labeler_runs_inside_tf_data_on_images_with_and_without_people():
    anchors = generate_anchors(AnchorConfig(), 64)
    labeler = AnchorLabeler()
    images_boxes = [np.array([[8.0, 8.0, 40.0, 24.0]], np.float32), np.zeros((0, 4), np.float32)]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(images_boxes), output_signature=tf.TensorSpec([None, 4], tf.float32))
    dataset = dataset.map(lambda boxes: labeler(anchors, boxes,
                                                tf.zeros(tf.shape(boxes)[:1], tf.bool)))
    results = list(dataset.as_numpy_iterator())
    assert results[0]['num_positives'] >= 1 and results[1]['num_positives'] == 0


@pytest.mark.parametrize('shape', [(0, 4), (3, 4)])
def test_labeler_is_traceable_with_unknown_number_of_people(shape):
    labeler = AnchorLabeler()
    fn = tf.function(lambda b, i: labeler(ANCHORS, b, i), input_signature=[
        tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([None], tf.bool)])
    targets = fn(tf.zeros(shape), tf.zeros(shape[:1], tf.bool))
    assert targets['class_targets'].shape == (7,)
