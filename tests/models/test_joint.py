"""The joint model: no gradient to the trunk, matching variants, every variant runs (the shapes
every person-search model must give: test_person_search_models.py)."""

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
