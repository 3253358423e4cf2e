"""Protocol data read from TFDS splits of the shared schema, built by a small in-test builder
(PRW-style with cameras and a CUHK-style variant with gallery lists)."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from eval_test_builder import FRAMES   # importing it registers eval_test_person_search
from ps_tf.evaluation import protocol as protocol_lib


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp('eval_tfds'))
    for config in ('prw_style', 'cuhk_style'):
        tfds.builder(f'eval_test_person_search/{config}', data_dir=directory).download_and_prepare()
    return directory


def test_prw_style_protocol(data_dir):
    protocol = protocol_lib.load_protocol('eval_test_person_search/prw_style', data_dir)
    gallery, queries = protocol.gallery, protocol.queries
    assert protocol.style == 'prw' and protocol.box_convention == 'seqnet_prw'
    np.testing.assert_array_equal(gallery.names, ['c1s1_000000.jpg', 'c2s1_000001.jpg',
                                                  'c1s1_000002.jpg', 'c3s1_000003.jpg'])
    np.testing.assert_array_equal(gallery.cameras, [1, 2, 1, 3])
    np.testing.assert_array_equal(gallery.box_offsets, [0, 1, 4, 5, 5])
    np.testing.assert_array_equal(gallery.person_ids, [8, 5, -1, -1, 5])
    np.testing.assert_array_equal(gallery.ignore, [False, False, False, True, False])
    np.testing.assert_array_equal(gallery.boxes[4], FRAMES[0][3][0][:4])
    # The SeqNet PRW convention: x < 0 clipped before x2 = x + w, then truncation.
    np.testing.assert_array_equal(protocol.gallery_gt_boxes()[[1, 4]],
                                  [[10, 20, 40, 90], [0, 295, 74, 633]])
    np.testing.assert_array_equal(queries.image_names, ['c2s1_000001.jpg', 'c1s1_000000.jpg'])
    np.testing.assert_array_equal(queries.person_ids, [5, 8])
    np.testing.assert_array_equal(queries.cameras, [2, 1])
    np.testing.assert_array_equal(protocol.query_image_index, [1, 0])
    assert queries.galleries == {}


def test_cuhk_style_protocol(data_dir):
    protocol = protocol_lib.load_protocol('eval_test_person_search/cuhk_style', data_dir)
    assert protocol.style == 'cuhk_sysu' and protocol.box_convention == 'truncate'
    assert protocol.gallery_sizes == [2, 3]
    small, large = protocol.queries.galleries[2], protocol.queries.galleries[3]
    np.testing.assert_array_equal(small.offsets, [0, 2, 4])
    np.testing.assert_array_equal(small.image_index, [2, 3, 3, 1])
    np.testing.assert_array_equal(small.is_positive, [True, False, False, False])
    np.testing.assert_array_equal(small.positive_box[0], FRAMES[0][3][0][:4])
    np.testing.assert_array_equal(large.offsets, [0, 3, 6])
    np.testing.assert_array_equal(large.image_index, [2, 2, 0, 3, 1, 2])   # duplicate kept
    np.testing.assert_array_equal(large.is_positive, [True, True, False, False, False, False])


def test_unprepared_dataset_is_reported(tmp_path):
    with pytest.raises(ValueError, match='is not prepared'):
        protocol_lib.load_protocol('eval_test_person_search/prw_style', str(tmp_path))
