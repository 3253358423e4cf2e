"""Tests of ps_tf.data.decoder on the tiny synthetic dataset."""

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from ps_tf.data import decoder

TINY = 'synthetic_person_search/tiny'


def _examples(data_dir, decoders=None):
    import tfds_builders  # noqa: F401
    builder = tfds.builder(TINY, data_dir=data_dir)
    dataset = builder.as_dataset(split='train', shuffle_files=False, decoders=decoders)
    return list(dataset)


def test_keys_dtypes_and_values(tiny_synthetic_data_dir):
    examples = _examples(tiny_synthetic_data_dir)
    assert len(examples) == 8
    for example in examples:
        decoded = decoder.decode_example(example)
        assert set(decoded) == {'image', 'boxes', 'annotated_boxes', 'ignore', 'person_id',
                                'filename', 'protocol_index', 'image_size'}
        assert decoded['image'].dtype == tf.uint8
        assert decoded['boxes'].dtype == tf.float32
        assert decoded['ignore'].dtype == tf.bool
        assert decoded['person_id'].dtype == tf.int64
        assert decoded['filename'].dtype == tf.string
        assert decoded['image_size'].dtype == tf.int32
        np.testing.assert_array_equal(decoded['image_size'], [96, 128])
        np.testing.assert_array_equal(decoded['image'], example['image'])
        num_objects = len(example['objects']['person_id'])
        assert decoded['boxes'].shape == (num_objects, 4)
        np.testing.assert_array_equal(decoded['person_id'], example['objects']['person_id'])
        np.testing.assert_array_equal(decoded['ignore'], example['objects']['ignore'])
        assert decoded['filename'].numpy() == example['image/filename'].numpy()
        assert int(decoded['protocol_index']) == int(example['protocol_index'])

        # The pixel yxyx boxes are the annotated x1, y1, x2, y2 boxes clipped to the image.
        x1, y1, x2, y2 = np.moveaxis(example['objects']['box'].numpy(), -1, 0)
        expected = np.stack([np.clip(y1, 0, 96), np.clip(x1, 0, 128),
                             np.clip(y2, 0, 96), np.clip(x2, 0, 128)], axis=-1)
        np.testing.assert_allclose(decoded['boxes'], expected.reshape(-1, 4), atol=1e-3)
        np.testing.assert_allclose(decoded['annotated_boxes'],
                                   example['objects']['box'].numpy().reshape(-1, 4), atol=1e-3)
        boxes = decoded['boxes'].numpy()
        assert np.all(boxes >= 0) and np.all(boxes[:, [0, 2]] <= 96)
        assert np.all(boxes[:, [1, 3]] <= 128)


def test_partial_decoding_gives_the_same_tensors(tiny_synthetic_data_dir):
    full = {e['image/filename'].numpy(): decoder.decode_example(e)
            for e in _examples(tiny_synthetic_data_dir)}
    partial = _examples(tiny_synthetic_data_dir, decoders=decoder.partial_decoding())
    assert partial[0]['image'].dtype == tf.string          # the JPEG is decoded by us
    for example in partial:
        decoded = decoder.decode_example(example)
        reference = full[example['image/filename'].numpy()]
        for key, value in reference.items():
            np.testing.assert_array_equal(decoded[key], value, err_msg=key)
