"""Tests of the CUHK-SYSU .mat readers and labelling, without TFDS."""

import pathlib

import numpy as np
import pytest
import scipy.io

from tfds_builders import schema
from tfds_builders.cuhk_sysu import annotations
from tfds_builders.cuhk_sysu import make_dummy_data as dummy
from tfds_builders.cuhk_sysu import release

DUMMY = pathlib.Path(__file__).parent / 'dummy_data'


def _pool_index():
    return {n: i for i, n in enumerate(release.read_pool(DUMMY / release.POOL_MAT))}


def test_dummy_data_is_current(tmp_path):
    """The committed dummy_data matches what make_dummy_data.py writes now."""
    dummy.write_release(tmp_path)
    dummy.check_nesting(tmp_path)
    committed = sorted(p.relative_to(DUMMY) for p in DUMMY.rglob('*') if p.is_file())
    assert committed == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob('*') if p.is_file())
    for rel in committed:
        if rel.suffix == '.mat':  # Bytes 0..127 are the header, with its creation date.
            assert (DUMMY / rel).read_bytes()[128:] == (tmp_path / rel).read_bytes()[128:], rel


def test_read_images_widens_uint8_and_uint16():
    images = {im.name: im.boxes_xywh for im in release.read_images(DUMMY / release.IMAGES_MAT)}
    assert list(images) == list(dummy.IMAGES)
    for name, (_, boxes) in dummy.IMAGES.items():
        assert images[name].dtype == np.int64
        np.testing.assert_array_equal(images[name], [b[:4] for b in boxes])
    # s1 box 1 is uint8 (200, 30, 100, 150): x + w = 300 must not wrap to 44.
    np.testing.assert_array_equal(schema.xywh_to_xyxy(images['s1.jpg'][1]), [200, 30, 300, 180])


def test_valid_boxes_drops_empty_boxes_and_keeps_images():
    boxes = annotations.valid_boxes(release.read_images(DUMMY / release.IMAGES_MAT))
    assert boxes['s5.jpg'].shape == (0, 4)
    assert len(boxes['s1.jpg']) == 2 and len(boxes['s3.jpg']) == 2 and len(boxes['s7.jpg']) == 2


def test_read_pool_keeps_order():
    assert release.read_pool(DUMMY / release.POOL_MAT) == dummy.POOL


@pytest.mark.parametrize('column', [True, False])
def test_read_train_both_orientations(tmp_path, column):
    dummy.write_release(tmp_path, train_column=column)
    shape = scipy.io.loadmat(tmp_path / release.TRAIN_MAT)['Train'].shape
    assert shape == ((3, 1) if column else (1, 3))
    identities = release.read_train(tmp_path / release.TRAIN_MAT)
    assert [i.name for i in identities] == [name for name, _ in dummy.TRAIN]
    for identity, (_, scenes) in zip(identities, dummy.TRAIN):
        assert [a.image_name for a in identity.appearances] == [s[0] for s in scenes]
        for appearance, (image, box, _) in zip(identity.appearances, scenes):
            np.testing.assert_array_equal(appearance.box_xywh, dummy.IMAGES[image][1][box][:4])
    assert len(identities[2].appearances) == 1  # nAppear == 1 does not squeeze to 0-d.


@pytest.mark.parametrize('size', [50, 100])
def test_read_protocol(size):
    protocol = release.read_protocol(DUMMY / release.PROTOCOL_DIR / f'TestG{size}.mat',
                                     _pool_index())
    assert protocol.gallery_size == size
    assert [q.image_name for q in protocol.queries] == [q['query'][0] for q in dummy.QUERIES]
    assert [q.is_hard for q in protocol.queries] == [bool(q['ishard']) for q in dummy.QUERIES]
    assert [q.identity_name for q in protocol.queries] == [q['idname'] for q in dummy.QUERIES]
    for i, q in enumerate(dummy.QUERIES):
        image, box, _ = q['query']
        np.testing.assert_array_equal(protocol.queries[i].box_xywh, dummy.IMAGES[image][1][box][:4])
        got = [(index, None if b is None else b.tolist()) for index, b in protocol.gallery(i)]
        want = [(dummy.POOL.index(im), None if b is None else list(dummy.IMAGES[im][1][b][:4]))
                for im, b, _ in q['galleries'][size]]
        assert got == want


def test_protocol_files_lists_sizes():
    assert list(release.protocol_files(DUMMY)) == [50, 100]


def test_labels_follow_seqnet():
    images = release.read_images(DUMMY / release.IMAGES_MAT)
    pool = release.read_pool(DUMMY / release.POOL_MAT)
    boxes = annotations.valid_boxes(images)
    train_names, gallery_names = annotations.split_names([im.name for im in images], pool)
    assert train_names == ['s1.jpg', 's13.jpg', 's2.jpg', 's3.jpg', 's4.jpg', 's5.jpg', 's6.jpg']
    expected = dummy.expected()
    train = annotations.label_images(
        train_names, boxes,
        annotations.train_labels(release.read_train(DUMMY / release.TRAIN_MAT)), 'train')
    protocol = release.read_protocol(DUMMY / release.PROTOCOL_DIR / 'TestG50.mat', _pool_index())
    gallery = annotations.label_images(gallery_names, boxes,
                                       annotations.test_labels(protocol, pool), 'gallery')
    for split, got in (('train', train), ('gallery', gallery)):
        assert [im.name for im in got] == [e['name'] for e in expected[split]]
        for image, want in zip(got, expected[split]):
            np.testing.assert_array_equal(image.person_ids, want['person_ids'], err_msg=image.name)
            np.testing.assert_array_equal(schema.xywh_to_xyxy(image.boxes_xywh), want['boxes'])


def test_unmatched_label_is_ignored():
    boxes = {'a.jpg': np.array([[1, 2, 3, 4]], np.int64)}
    labels = [('a.jpg', np.array([1, 2, 3, 5]), 7, 'test'),
              ('b.jpg', np.array([0, 0, 1, 1]), 8, 'test')]
    (image,) = annotations.label_images(['a.jpg'], boxes, labels, 'train')
    np.testing.assert_array_equal(image.person_ids, [schema.NO_IDENTITY])


def test_missing_variable_names_file_and_keys(tmp_path):
    path = tmp_path / 'pool.mat'
    scipy.io.savemat(path, {'other': np.zeros(3)})
    with pytest.raises(ValueError, match=r"pool\.mat: expected the variable 'pool', found "
                                         r"\['other'\]"):
        release.read_pool(path)


def test_malformed_box_names_field(tmp_path):
    dummy.write_release(tmp_path)
    mat = scipy.io.loadmat(tmp_path / release.IMAGES_MAT)
    mat['Img'][0, 2]['box'][0, 1]['idlocate'] = np.array([[1, 2, 3]], np.uint8)
    scipy.io.savemat(tmp_path / release.IMAGES_MAT, {'Img': mat['Img']})
    with pytest.raises(ValueError, match=r'Images\.mat: Img\[2\] \(s3\.jpg\) \.box\[1\]\.idlocate: '
                                         r'expected 4 numbers'):
        release.read_images(tmp_path / release.IMAGES_MAT)


def test_gallery_image_outside_pool_fails():
    pool_index = _pool_index()
    del pool_index['s12.jpg']
    with pytest.raises(ValueError, match=r"TestG50\[2\]\.Gallery\[0\]\.imname: image 's12\.jpg' "
                                         r'is not in annotation/pool\.mat'):
        release.read_protocol(DUMMY / release.PROTOCOL_DIR / 'TestG50.mat', pool_index)


def test_query_lists_must_agree():
    pool_index = _pool_index()
    g50 = release.read_protocol(DUMMY / release.PROTOCOL_DIR / 'TestG50.mat', pool_index)
    g100 = release.read_protocol(DUMMY / release.PROTOCOL_DIR / 'TestG100.mat', pool_index)
    release.check_same_queries(g50, g100, 'TestG100.mat')
    g100.queries[3] = g100.queries[4]
    with pytest.raises(ValueError, match='TestG100.mat: query 3 is s14.jpg'):
        release.check_same_queries(g50, g100, 'TestG100.mat')


def test_not_a_mat_file(tmp_path):
    path = tmp_path / 'Images.mat'
    path.write_bytes(b'not a mat file at all' * 10)
    with pytest.raises(ValueError, match=r'Images\.mat: not a MATLAB v5 \.mat file'):
        release.read_images(path)


def test_positives_after_negatives_are_kept_in_file_order(tmp_path, monkeypatch):
    query = dict(dummy.QUERIES[0])
    query['galleries'] = dict(query['galleries'])
    query['galleries'][50] = [('s8.jpg', None, ''), ('s7.jpg', 0, 'u8'), ('s10.jpg', None, '')]
    monkeypatch.setattr(dummy, 'QUERIES', [query] + dummy.QUERIES[1:])
    dummy.write_release(tmp_path)
    protocol = release.read_protocol(tmp_path / release.PROTOCOL_DIR / 'TestG50.mat',
                                     _pool_index())
    got = [(index, None if box is None else box.tolist()) for index, box in protocol.gallery(0)]
    assert got == [(3, None), (1, [200, 10, 90, 200]), (5, None)]
