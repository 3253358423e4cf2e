"""The disjoint baseline: crops from the right image and region, raw vs L2-normalised embeddings
(the shapes every person-search model must give: test_person_search_models.py)."""

import numpy as np
import pytest
import tensorflow as tf

from ps_tf.models.disjoint import DISJOINT, DisjointModel, build_disjoint_embedder
from ps_tf.models.retinanet import build_detector

IMAGE = 64
EMBEDDING = 8


@pytest.fixture(scope='module')
def parts():
    detector = build_detector('J4')
    detector(tf.zeros([1, IMAGE, IMAGE, 3]), training=False)
    embedder = build_disjoint_embedder(embedding_dim=EMBEDDING)
    images = tf.random.stateless_uniform([2, IMAGE, IMAGE, 3], [1, 2], maxval=255.0)
    return detector, embedder, images


def test_crops_come_from_the_box_region_of_the_indexed_image(parts):
    detector, embedder, _ = parts
    model = DisjointModel(detector, embedder)
    assert model.variant == DISJOINT and model.embedding_dim == EMBEDDING
    backgrounds = tf.random.stateless_uniform([2, IMAGE, IMAGE, 3], [3, 4], maxval=255.0)
    person = tf.random.stateless_uniform([34, 18, 3], [5, 6], maxval=255.0)
    # The same person at the same place in two different scenes; one pixel more than the box on
    # each side, which the bilinear samples at the box edges reach into.
    images = tf.Variable(backgrounds)
    images[:, 7:41, 19:37].assign(tf.stack([person, person]))
    images = tf.convert_to_tensor(images)
    on_person = tf.constant([[8.0, 20.0, 40.0, 36.0]] * 2)
    around = tf.constant([[0.0, 10.0, 48.0, 46.0]] * 2)   # the person and some background
    crops = model.crop(images, on_person, tf.constant([0, 1]))
    assert crops.shape == (2, 256, 128, 3)
    np.testing.assert_allclose(crops[0], crops[1], atol=1e-3)
    same = model.embed_boxes(images, on_person, tf.constant([0, 1])).numpy()
    np.testing.assert_allclose(same[0], same[1], atol=1e-5)
    different = model.embed_boxes(images, around, tf.constant([0, 1])).numpy()
    assert np.abs(different[0] - different[1]).max() > 1e-3
    # The index picks the image: the same box on image 1 twice gives the same embedding.
    twice = model.embed_boxes(images, around, tf.constant([1, 1])).numpy()
    np.testing.assert_allclose(twice[0], different[1], atol=1e-5)


def test_embedder_call_is_raw_and_embed_normalised(parts):
    _, embedder, _ = parts
    crops = tf.random.stateless_uniform([3, 256, 128, 3], [7, 8], maxval=255.0)
    raw = embedder(crops, training=False).numpy()
    assert raw.shape == (3, EMBEDDING) and raw.dtype == np.float32
    assert not np.allclose(np.linalg.norm(raw, axis=-1), 1.0)
    normalised = embedder.embed(crops).numpy()
    np.testing.assert_allclose(normalised, raw / np.linalg.norm(raw, axis=-1, keepdims=True),
                               rtol=1e-4, atol=1e-6)
    assert embedder.embed(tf.zeros([0, 256, 128, 3])).shape == (0, EMBEDDING)


def test_bfloat16_embedder_returns_float32_embeddings():
    embedder = build_disjoint_embedder(embedding_dim=EMBEDDING, policy='mixed_bfloat16')
    assert embedder.resnet.layers[-1].compute_dtype == 'bfloat16'
    assert embedder(tf.zeros([1, 256, 128, 3])).dtype == tf.float32
    assert tf.keras.mixed_precision.global_policy().name == 'float32'   # restored


def test_embedding_dim_must_be_positive():
    with pytest.raises(ValueError, match='embedding_dim'):
        build_disjoint_embedder(embedding_dim=0)
