"""What every person-search model (`PersonSearchModel`: joint J* and disjoint Disj) must do:
output shapes for 0, 1 and many people, unit embeddings with zeros in the padded slots, and
queries embedded through the same path as detections."""

import numpy as np
import pytest
import tensorflow as tf

from ps_tf.models import reid
from ps_tf.models.disjoint import DisjointModel, build_disjoint_embedder
from ps_tf.models.joint import JointModel
from ps_tf.models.postprocess import DetectionGenerator
from ps_tf.models.retinanet import build_detector

IMAGE = 64
EMBEDDING = 8
KINDS = ['joint', 'disjoint']


@pytest.fixture(scope='module')
def parts():
    detector = build_detector('J4')
    detector(tf.zeros([1, IMAGE, IMAGE, 3]), training=False)
    branch = reid.build_reid_branch('J4', embedding_dim=EMBEDDING)
    reid.copy_detector_stages(branch, detector.rest)
    embedder = build_disjoint_embedder(embedding_dim=EMBEDDING)
    images = tf.random.stateless_uniform([2, IMAGE, IMAGE, 3], [1, 2], maxval=255.0)
    return detector, {'joint': branch, 'disjoint': embedder}, images


def _model(kind, detector, networks):
    """A new instance (its own traced graphs) of the `kind` model."""
    cls = JointModel if kind == 'joint' else DisjointModel
    return cls(detector, networks[kind])


@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('max_detections, score_threshold, expected', [
    (4, 0.99, 0),     # an untrained detector scores ~0.01: nobody above 0.99
    (1, 0.0, 1),
    (4, 0.0, 4)])
def test_detect_and_embed_for_0_1_and_many_people(parts, kind, max_detections, score_threshold,
                                                  expected):
    detector, networks, images = parts
    detector.detection_generator = DetectionGenerator(max_detections=max_detections,
                                                      score_threshold=score_threshold)
    model = _model(kind, detector, networks)
    assert model.embedding_dim == EMBEDDING
    outputs = model.detect_and_embed(images)
    assert outputs['detection_boxes'].shape == (2, max_detections, 4)
    assert outputs['detection_scores'].shape == (2, max_detections)
    np.testing.assert_array_equal(outputs['num_detections'], [expected, expected])
    embeddings = outputs['detection_embeddings'].numpy()
    assert embeddings.shape == (2, max_detections, EMBEDDING)
    np.testing.assert_allclose(np.linalg.norm(embeddings[:, :expected], axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(embeddings[:, expected:], 0.0)   # padded slots
    if expected:
        # Queries take the same path: embedding the detected boxes gives the same vectors.
        boxes = outputs['detection_boxes'][:, :expected]
        again = model.embed_boxes(images, tf.reshape(boxes, [-1, 4]),
                                  tf.repeat(tf.range(2), expected))
        np.testing.assert_allclose(again.numpy().reshape(2, expected, -1),
                                   embeddings[:, :expected], atol=1e-4)


@pytest.mark.parametrize('kind', KINDS)
def test_embed_boxes_for_0_1_and_many_boxes(parts, kind):
    detector, networks, images = parts
    model = _model(kind, detector, networks)
    boxes = tf.constant([[0.0, 0.0, 64.0, 32.0], [10.0, 20.0, 60.0, 40.0], [5.0, 5.0, 30.0, 20.0]])
    for count in (0, 1, 3):
        embeddings = model.embed_boxes(images, boxes[:count], tf.constant([0, 1, 1][:count]))
        assert embeddings.shape == (count, EMBEDDING)
        np.testing.assert_allclose(np.linalg.norm(embeddings, axis=-1), 1.0, rtol=1e-5)
