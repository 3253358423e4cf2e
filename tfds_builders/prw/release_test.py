"""Tests of the PRW release readers and the training-id remap, without TFDS."""

import pathlib

import numpy as np
import pytest
import scipy.io

from tfds_builders import schema
from tfds_builders.prw import identities
from tfds_builders.prw import make_dummy_data as dummy
from tfds_builders.prw import release

DUMMY = pathlib.Path(__file__).parent / 'dummy_data'


def test_dummy_data_is_current(tmp_path):
    """The committed dummy_data matches what make_dummy_data.py writes now."""
    dummy.write_release(tmp_path)
    dummy.check_nesting(tmp_path)
    committed = sorted(p.relative_to(DUMMY) for p in DUMMY.rglob('*') if p.is_file())
    assert committed == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob('*') if p.is_file())
    for rel in committed:
        if rel.suffix == '.mat':  # Bytes 0..127 are the header, with its creation date.
            assert (DUMMY / rel).read_bytes()[128:] == (tmp_path / rel).read_bytes()[128:], rel
        elif rel.suffix == '.txt':
            assert (DUMMY / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel


def test_frame_lists_keep_file_order():
    assert release.read_frame_list(DUMMY / release.FRAME_TRAIN, 'img_index_train') == list(
        dummy.TRAIN_FRAMES)
    assert release.read_frame_list(DUMMY / release.FRAME_TEST, 'img_index_test') == list(
        dummy.TEST_FRAMES)


def test_ids_with_id_test2_key():
    np.testing.assert_array_equal(release.read_ids(DUMMY / release.ID_TRAIN, ['ID_train']),
                                  dummy.ID_TRAIN)
    np.testing.assert_array_equal(
        release.read_ids(DUMMY / release.ID_TEST, ['ID_test2', 'ID_test']), dummy.ID_TEST)
    with pytest.raises(ValueError, match=r"ID_test\.mat: expected a variable named 'ID_test', "
                                         r"found \['ID_test2'\]"):
        release.read_ids(DUMMY / release.ID_TEST, ['ID_test'])


def test_all_three_annotation_keys():
    frames = {**dummy.TRAIN_FRAMES, **dummy.TEST_FRAMES}
    assert {key for key, _ in frames.values()} == set(release.ANNOTATION_KEYS)
    for frame, (_, rows) in frames.items():
        got = release.read_annotation(release.annotation_path(DUMMY, frame))
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, rows)


def test_annotation_with_another_single_key(tmp_path):
    scipy.io.savemat(tmp_path / 'a.jpg.mat', {'boxes': np.array([[3, 1, 2, 3, 4]], np.float64)})
    np.testing.assert_array_equal(release.read_annotation(tmp_path / 'a.jpg.mat'),
                                  [[3, 1, 2, 3, 4]])


def test_malformed_annotation_names_file_and_shape(tmp_path):
    scipy.io.savemat(tmp_path / 'a.jpg.mat', {'box_new': np.zeros((2, 4))})
    with pytest.raises(ValueError, match=r"a\.jpg\.mat: box_new: expected a \(K, 5\) numeric "
                                         r'array .* got shape \(2, 4\)'):
        release.read_annotation(tmp_path / 'a.jpg.mat')


def test_person_ids_map_minus_two():
    np.testing.assert_array_equal(release.person_ids(np.array([-2., 932., 1.]), 'x'),
                                  [schema.NO_IDENTITY, 932, 1])
    with pytest.raises(ValueError, match=r'x: expected person ids that are -2 or positive'):
        release.person_ids(np.array([-1.]), 'x')


def test_boxes_keep_negative_coordinates():
    np.testing.assert_allclose(release.boxes_xyxy([[-1.703, 30.5756, 20.6436, 50.2289]]),
                               [[-1.703, 30.5756, -1.703 + 20.6436, 30.5756 + 50.2289]])


def test_query_info_crlf():
    assert (DUMMY / release.QUERY_INFO).read_bytes().count(b'\r\n') == len(dummy.QUERIES)
    queries = release.read_query_info(DUMMY / release.QUERY_INFO)
    assert [(q.person_id, q.frame) for q in queries] == [(q[0], q[5]) for q in dummy.QUERIES]
    for got, want in zip(queries, dummy.QUERIES):
        np.testing.assert_array_equal(got.box_xywh, want[1:5])


def test_query_info_bad_line(tmp_path):
    (tmp_path / 'query_info.txt').write_bytes(b'479 1 2 3 4 c1s1_000001\r\n12 1 2 c1\r\n')
    with pytest.raises(ValueError, match=r'query_info\.txt: line 2: expected "pid x y w h frame"'):
        release.read_query_info(tmp_path / 'query_info.txt')


@pytest.mark.parametrize('frame, camera', [('c1s1_000151', 1), ('c6s2_000050', 6),
                                           ('c3s2_044587', 3)])
def test_camera_id(frame, camera):
    assert release.camera_id(frame) == camera


def test_camera_id_bad_name():
    with pytest.raises(ValueError, match="frame name 'x1': expected c<camera>"):
        release.camera_id('x1')


def test_training_id_map_includes_932():
    id_map = identities.training_id_map([932, 1, 480, 5])
    assert id_map == {1: 0, 5: 1, 480: 2, 932: 3}
    np.testing.assert_array_equal(identities.remap_ids([932, -1, 5], id_map), [3, -1, 1])
    with pytest.raises(ValueError, match=r'person ids \[479\] are not training ids'):
        identities.remap_ids([479], id_map)


def test_training_id_map_of_the_real_id_layout():
    train_ids = list(range(1, 479)) + list(range(480, 484)) + [932]
    id_map = identities.training_id_map(train_ids)
    assert len(id_map) == 483 and sorted(id_map.values()) == list(range(483))
    assert id_map[478] == 477 and id_map[480] == 478 and id_map[932] == 482
    with pytest.raises(ValueError, match='listed twice'):
        identities.training_id_map([1, 1])
