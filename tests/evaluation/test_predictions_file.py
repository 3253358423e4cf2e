"""Predictions files: round trip, and validation messages that name the problem."""

import dataclasses

import numpy as np
import pytest

import eval_fixtures
from ps_tf.evaluation import predictions as predictions_lib


@pytest.fixture
def protocol_and_predictions():
    rng = np.random.default_rng(0)
    protocol = eval_fixtures.random_protocol(rng, num_images=12, num_identities=4)
    return protocol, eval_fixtures.random_predictions(rng, protocol)


def test_round_trip(tmp_path, protocol_and_predictions):
    _, predictions = protocol_and_predictions
    path = str(tmp_path / 'sub' / 'predictions.npz')
    predictions_lib.write_predictions(path, predictions)
    loaded = predictions_lib.read_predictions(path)
    for key in predictions_lib.KEYS:
        np.testing.assert_array_equal(getattr(loaded, key), getattr(predictions, key))
        assert getattr(loaded, key).dtype == getattr(predictions, key).dtype
    assert sorted(p.name for p in (tmp_path / 'sub').iterdir()) == ['predictions.npz']


def test_gallery_in_any_order_maps_to_protocol_order(protocol_and_predictions):
    protocol, predictions = protocol_and_predictions
    assert not np.array_equal(predictions.gallery_image_names, protocol.gallery.names)
    det_image = predictions.aligned_to(protocol.gallery.names, len(protocol.queries))
    np.testing.assert_array_equal(protocol.gallery.names[det_image],
                                  predictions.gallery_image_names[predictions.det_image_index])


def test_missing_key(tmp_path, protocol_and_predictions):
    _, predictions = protocol_and_predictions
    path = tmp_path / 'p.npz'
    arrays = {k: getattr(predictions, k) for k in predictions_lib.KEYS if k != 'det_scores'}
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"missing key\(s\) \['det_scores'\]"):
        predictions_lib.read_predictions(str(path))


@pytest.mark.parametrize('change, message', [
    (dict(det_boxes=np.zeros((3, 4), np.float32)), r'det_boxes must have shape \(\d+, 4\)'),
    (dict(det_scores='float64'), 'det_scores must be float32, got float64'),
    (dict(det_image_index='float32'), 'det_image_index must be a 1-D integer array'),
    (dict(query_embeddings='wrong_dim'), r'query_embeddings must have shape \(4, 16\)'),
    (dict(det_embeddings='unnormalised'), 'det_embeddings are not L2-normalised: row 0'),
    (dict(det_image_index='out_of_range'), r'det_image_index out of range \[0, 12\)'),
    (dict(det_boxes='backwards'), 'x2 >= x1 and y2 >= y1'),
    (dict(gallery_image_names='duplicate'), 'lists images more than once'),
    (dict(det_scores='nan'), 'det_scores has non-finite values'),
])
def test_invalid_content_is_named(tmp_path, protocol_and_predictions, change, message):
    _, predictions = protocol_and_predictions
    (key, how), = change.items()
    value = getattr(predictions, key).copy()
    if isinstance(how, np.ndarray):
        value = how
    elif how in ('float64', 'float32'):
        value = value.astype(how)
    elif how == 'wrong_dim':
        value = np.eye(len(value), 8, dtype=np.float32)
    elif how == 'unnormalised':
        value[0] *= 2
    elif how == 'out_of_range':
        value[-1] = 12
    elif how == 'backwards':
        value[0] = [10, 10, 5, 20]
    elif how == 'duplicate':
        value[1] = value[0]
    elif how == 'nan':
        value[0] = np.nan
    broken = dataclasses.replace(predictions, **{key: value})
    with pytest.raises(ValueError, match=message):
        broken.validate()
    path = tmp_path / 'p.npz'
    np.savez(path, **{k: getattr(broken, k) for k in predictions_lib.KEYS})
    with pytest.raises(ValueError, match=message):
        predictions_lib.read_predictions(str(path))
    with pytest.raises(ValueError, match=message):
        predictions_lib.write_predictions(str(tmp_path / 'never.npz'), broken)
    assert not (tmp_path / 'never.npz').exists()


def test_gallery_names_must_match_the_dataset(protocol_and_predictions):
    protocol, predictions = protocol_and_predictions
    names = predictions.gallery_image_names.copy()
    names[0] = 'strange.jpg'
    broken = dataclasses.replace(predictions, gallery_image_names=names)
    with pytest.raises(ValueError, match=r"1 unknown \(e.g. \['strange.jpg'\]\), 1 missing"):
        broken.aligned_to(protocol.gallery.names, len(protocol.queries))


def test_query_count_must_match_the_dataset(protocol_and_predictions):
    protocol, predictions = protocol_and_predictions
    with pytest.raises(ValueError, match='query_embeddings has 4 rows but the dataset has 5'):
        predictions.aligned_to(protocol.gallery.names, len(protocol.queries) + 1)


@pytest.mark.parametrize('contents, message', [
    ('json', r'it is text \(JSON\?\), not an \.npz archive'),
    ('npy', r'it is a single NumPy array \(\.npy, numpy\.save\)'),
    ('empty', 'it is an empty file'),
    ('csv', r"not an \.npz \(zip\) archive: it starts with b'name,sco'"),
    ('truncated', r'a damaged \.npz archive \(BadZipFile'),
    ('objects', r'det_scores cannot be read \(Object arrays'),
])
def test_a_file_that_is_not_a_predictions_npz_is_named(tmp_path, protocol_and_predictions,
                                                       contents, message):
    _, predictions = protocol_and_predictions
    arrays = {key: getattr(predictions, key) for key in predictions_lib.KEYS}
    path = tmp_path / 'predictions.npz'
    if contents == 'json':
        path.write_text('{"det_scores": [0.9]}')
    elif contents == 'npy':
        with open(path, 'wb') as stream:
            np.save(stream, predictions.det_scores)
    elif contents == 'empty':
        path.write_bytes(b'')
    elif contents == 'csv':
        path.write_text('name,score\na.jpg,0.9\n')
    elif contents == 'truncated':
        np.savez(path, **arrays)
        path.write_bytes(path.read_bytes()[:200])
    else:
        np.savez(path, **{**arrays, 'det_scores': np.array([0.9, None], dtype=object)})
    with pytest.raises(ValueError, match=message) as error:
        predictions_lib.read_predictions(str(path))
    assert str(path) in str(error.value) and 'pickled data' not in str(error.value)
    assert '.npz archive' in str(error.value)
