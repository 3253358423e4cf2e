"""The joint model: output shapes for 0, 1 and many people, the shared ROI path, no gradient to
the trunk."""

import numpy as np
import pytest
import tensorflow as tf

from ps_tf.models import reid
from ps_tf.models.joint import JointModel
from ps_tf.models.postprocess import DetectionGenerator
from ps_tf.models.retinanet import build_detector

IMAGE = 64
EMBEDDING = 8


@pytest.fixture(scope='module')
def parts():
    detector = build_detector('J4')
    detector(tf.zeros([1, IMAGE, IMAGE, 3]), training=False)
    branch = reid.build_reid_branch('J4', embedding_dim=EMBEDDING)
    reid.copy_detector_stages(branch, detector.rest)
    images = tf.random.stateless_uniform([2, IMAGE, IMAGE, 3], [1, 2], maxval=255.0)
    return detector, branch, images


@pytest.mark.parametrize('max_detections, score_threshold, expected', [
    (4, 0.99, 0),     # an untrained detector scores ~0.01: nobody above 0.99
    (1, 0.0, 1),
    (4, 0.0, 4)])
def test_detect_and_embed_for_0_1_and_many_people(parts, max_detections, score_threshold,
                                                  expected):
    detector, branch, images = parts
    detector.detection_generator = DetectionGenerator(max_detections=max_detections,
                                                      score_threshold=score_threshold)
    joint = JointModel(detector, branch)   # a new instance: its own traced graph
    outputs = joint.detect_and_embed(images)
    assert outputs['detection_boxes'].shape == (2, max_detections, 4)
    assert outputs['detection_scores'].shape == (2, max_detections)
    np.testing.assert_array_equal(outputs['num_detections'], [expected, expected])
    embeddings = outputs['detection_embeddings'].numpy()
    assert embeddings.shape == (2, max_detections, EMBEDDING)
    norms = np.linalg.norm(embeddings, axis=-1)
    np.testing.assert_allclose(norms[:, :expected], 1.0, rtol=1e-5)
    np.testing.assert_array_equal(embeddings[:, expected:], 0.0)   # padded slots
    if expected:
        # Queries take the same ROI path: embedding the detected boxes gives the same vectors.
        boxes = outputs['detection_boxes'][:, :expected]
        again = joint.embed_boxes(images, tf.reshape(boxes, [-1, 4]),
                                  tf.repeat(tf.range(2), expected))
        np.testing.assert_allclose(again.numpy().reshape(2, expected, -1),
                                   embeddings[:, :expected], atol=1e-4)


def test_embed_boxes_for_0_1_and_many_boxes(parts):
    detector, branch, images = parts
    joint = JointModel(detector, branch)
    boxes = tf.constant([[0.0, 0.0, 64.0, 32.0], [10.0, 20.0, 60.0, 40.0], [5.0, 5.0, 30.0, 20.0]])
    for count in (0, 1, 3):
        embeddings = joint.embed_boxes(images, boxes[:count], tf.constant([0, 1, 1][:count]))
        assert embeddings.shape == (count, EMBEDDING)
        np.testing.assert_allclose(np.linalg.norm(embeddings, axis=-1), 1.0, rtol=1e-5)


def test_no_reid_gradient_reaches_the_shared_trunk(parts):
    detector, branch, images = parts
    joint = JointModel(detector, branch)
    boxes = tf.constant([[0.0, 0.0, 64.0, 32.0], [10.0, 20.0, 60.0, 40.0]])
    with tf.GradientTape() as tape:
        embeddings = joint.embed_boxes(images, boxes, tf.constant([0, 1]))
        loss = tf.reduce_sum(embeddings * tf.random.normal(embeddings.shape))
    trunk = detector.trunk.trainable_variables
    gradients = tape.gradient(loss, trunk + branch.trainable_variables)
    assert trunk and all(g is None for g in gradients[:len(trunk)])
    assert any(g is not None for g in gradients[len(trunk):])   # the branch itself learns


def test_parts_must_be_the_same_variant(parts):
    detector, branch, _ = parts
    branch.variant = 'J3'
    try:
        with pytest.raises(ValueError, match='variant'):
            JointModel(detector, branch)
    finally:
        branch.variant = 'J4'


@pytest.mark.parametrize('variant', ['J2', 'J3'])
def test_other_variants_detect_and_embed(variant):
    detector = build_detector(variant, detection_generator=DetectionGenerator(
        max_detections=2, score_threshold=0.0))
    branch = reid.build_reid_branch(variant, embedding_dim=EMBEDDING)
    joint = JointModel(detector, branch)
    outputs = joint.detect_and_embed(tf.zeros([1, IMAGE, IMAGE, 3]))
    assert outputs['detection_embeddings'].shape == (1, 2, EMBEDDING)
    np.testing.assert_array_equal(outputs['num_detections'], [2])
    np.testing.assert_allclose(np.linalg.norm(outputs['detection_embeddings'], axis=-1), 1.0,
                               rtol=1e-5)
