"""Running the joint model over a dataset's gallery and query splits: predictions arrays."""

import numpy as np
import pytest
import tensorflow as tf

from ps_tf.evaluation import inference
from ps_tf.evaluation import evaluator, predictions, protocol
from ps_tf.models import reid
from ps_tf.models.joint import JointModel
from ps_tf.models.postprocess import DetectionGenerator
from ps_tf.models.retinanet import build_detector

DATASET = 'synthetic_person_search/tiny'
IMAGE = 64
EMBEDDING = 8


@pytest.fixture(scope='module')
def joint():
    detector = build_detector('J4', detection_generator=DetectionGenerator(
        max_detections=3, score_threshold=0.0))
    detector(tf.zeros([1, IMAGE, IMAGE, 3]), training=False)
    branch = reid.build_reid_branch('J4', embedding_dim=EMBEDDING)
    reid.copy_detector_stages(branch, detector.rest)
    return JointModel(detector, branch)


@pytest.fixture(scope='module')
def tiny_protocol(tiny_synthetic_data_dir):
    return protocol.load_protocol(DATASET, tiny_synthetic_data_dir)


def test_detections_give_a_valid_predictions_file(joint, tiny_protocol, tiny_synthetic_data_dir):
    arrays = inference.predict_dataset(joint, DATASET, IMAGE, batch_size=2,
                                       data_dir=tiny_synthetic_data_dir)
    assert set(arrays) == set(predictions.KEYS)
    np.testing.assert_array_equal(arrays['gallery_image_names'], tiny_protocol.gallery.names)
    num_images = len(tiny_protocol.gallery.names)
    np.testing.assert_array_equal(arrays['det_image_index'], np.repeat(np.arange(num_images), 3))
    assert arrays['det_boxes'].shape == (3 * num_images, 4)
    assert arrays['det_embeddings'].shape == (3 * num_images, EMBEDDING)
    assert arrays['query_embeddings'].shape == (len(tiny_protocol.queries), EMBEDDING)
    # Original pixels: inside the 128 x 96 (h x w) or 96 x 128 images.
    assert arrays['det_boxes'].min() >= 0 and arrays['det_boxes'].max() <= 128
    result = predictions.Predictions(**arrays)
    result.validate()
    rows = evaluator.evaluate_predictions(tiny_protocol, result)
    assert rows and all(0.0 <= row['mAP'] <= 1.0 for row in rows)


def test_ground_truth_boxes_and_queries_take_the_same_path(joint, tiny_protocol,
                                                           tiny_synthetic_data_dir):
    arrays = inference.predict_dataset(joint, DATASET, IMAGE, batch_size=2,
                                       use_gt_boxes=True,
                                       data_dir=tiny_synthetic_data_dir)
    gallery = tiny_protocol.gallery
    kept = ~gallery.ignore
    np.testing.assert_array_equal(arrays['det_image_index'], gallery.box_image[kept])
    np.testing.assert_allclose(arrays['det_boxes'], gallery.boxes[kept].astype(np.float32))
    np.testing.assert_array_equal(arrays['det_scores'], 1.0)
    predictions.Predictions(**arrays).validate()
    # A query whose box is a gallery ground-truth box in the same image embeds identically.
    matched = 0
    for query, (name, box) in enumerate(zip(tiny_protocol.queries.image_names,
                                            tiny_protocol.queries.boxes)):
        same = ((gallery.names[arrays['det_image_index']] == name)
                & np.all(np.abs(arrays['det_boxes'] - box) < 1e-3, axis=1))
        for row in np.flatnonzero(same):
            matched += 1
            np.testing.assert_allclose(arrays['query_embeddings'][query],
                                       arrays['det_embeddings'][row], atol=1e-4)
    assert matched > 0


def test_the_detector_resize_mode_reaches_the_split_input(tiny_synthetic_data_dir):
    """Gallery and query images are resized as the detector was trained (no model needed): the
    tiny dataset's 128 x 96 / 96 x 128 images fill the square only when stretched."""
    for mode in ('stretch', 'letterbox'):
        batch = next(inference._split_input(DATASET, inference.QUERY_SPLIT, IMAGE, 2,
                                            tiny_synthetic_data_dir, None, resize_mode=mode)
                     .as_numpy_iterator())
        resized = batch['image_info'][:, 1]
        assert np.all(resized.max(axis=1) == IMAGE)
        assert np.all(resized.min(axis=1) == IMAGE) == (mode == 'stretch')
