"""The re-ID branch: pooled sizes per variant, ROI align geometry, embeddings, weight copying."""

import numpy as np
import pytest
import tensorflow as tf

from ps_tf.models import reid
from ps_tf.models.backbone import split_resnet50
from ps_tf.ops import geometry


@pytest.mark.parametrize('variant, shape', [('J2', (64, 32, 256)), ('J3', (32, 16, 512)),
                                            ('J4', (16, 8, 1024))])
def test_pooled_shape_is_a_256x128_snippet_at_the_shared_stride(variant, shape):
    assert reid.pooled_shape(variant) == shape
    assert reid.roi_size(variant) == shape[:2]


def test_roi_align_samples_the_box_of_its_own_image():
    # Map of 2 images of side 64 at stride 8: (2, 8, 8, 1); value = x coordinate, image 1 + 100.
    x = np.tile(np.arange(8, dtype=np.float32)[None, :], (8, 1))
    feature_map = np.stack([x, x + 100.0])[..., None]
    boxes = np.array([[0.0, 0.0, 64.0, 64.0], [0.0, 32.0, 64.0, 64.0]], np.float32)   # yxyx px
    pooled = geometry.roi_align(feature_map, boxes, np.array([0, 1]), image_size=64,
                                crop_size=(4, 3)).numpy()
    assert pooled.shape == (2, 4, 3, 1)
    # Normalised x = px / 64 samples the map at x * (8 - 1).
    np.testing.assert_allclose(pooled[0, 0, :, 0], [0.0, 3.5, 7.0], atol=1e-5)
    np.testing.assert_allclose(pooled[1, 0, :, 0], [103.5, 105.25, 107.0], atol=1e-5)
    empty = geometry.roi_align(feature_map, np.zeros((0, 4)), np.zeros(0, np.int32), 64, (4, 3))
    assert empty.shape == (0, 4, 3, 1)
    with pytest.raises(ValueError, match='image_size'):
        geometry.roi_align(feature_map, boxes, [0, 1], 0, (4, 3))


@pytest.fixture(scope='module')
def branch():
    return reid.build_reid_branch('J4', embedding_dim=16)


def test_branch_embeds_any_number_of_boxes(branch):
    pooled = tf.random.uniform((3,) + reid.pooled_shape('J4'))
    raw = branch(pooled, training=False)
    assert raw.shape == (3, 16)
    embedded = branch.embed(pooled).numpy()
    np.testing.assert_allclose(np.linalg.norm(embedded, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(embedded, tf.math.l2_normalize(raw, axis=-1), rtol=1e-5)
    assert branch.embed(tf.zeros((0,) + reid.pooled_shape('J4'))).shape == (0, 16)
    with pytest.raises(ValueError, match='embedding_dim'):
        reid.ReidBranch('J4', branch.rest, embedding_dim=0)


def test_replicated_stages_start_from_the_detector_stages(branch):
    _, detector_rest = split_resnet50('J4')   # random weights, other than the branch's
    pooled = tf.random.uniform((2,) + reid.pooled_shape('J4'))
    assert not np.allclose(branch.rest(pooled)['C5'], detector_rest(pooled)['C5'])
    reid.copy_detector_stages(branch, detector_rest)
    np.testing.assert_allclose(branch.rest(pooled)['C5'], detector_rest(pooled)['C5'], rtol=1e-5,
                               atol=1e-5)
    # Copies, not shared variables: training the branch leaves the detector alone.
    assert not {id(v) for v in branch.weights} & {id(v) for v in detector_rest.weights}
    other = tf.keras.Sequential([tf.keras.layers.Dense(3, input_shape=(4,))])
    with pytest.raises(ValueError, match='same variant'):
        reid.copy_detector_stages(branch, other)


def test_bfloat16_branch_computes_in_bfloat16_and_embeds_in_float32(branch):
    mixed = reid.build_reid_branch('J4', embedding_dim=16, policy='mixed_bfloat16')
    assert tf.keras.mixed_precision.global_policy().name == 'float32'   # restored
    convolution = next(layer for layer in mixed.rest.layers
                       if isinstance(layer, tf.keras.layers.Conv2D))
    assert convolution.compute_dtype == 'bfloat16' and convolution.dtype == 'float32'
    for source, target in zip(branch.weights, mixed.weights):
        target.assign(source)
    pooled = tf.random.stateless_uniform((4,) + reid.pooled_shape('J4'), seed=(1, 2))
    embeddings = mixed.embed(pooled)
    assert embeddings.dtype == tf.float32
    # Same weights, same embeddings up to bfloat16 rounding.
    cosine = tf.reduce_sum(embeddings * branch.embed(pooled), axis=-1).numpy()
    assert np.all(cosine > 0.99), cosine
