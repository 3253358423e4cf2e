"""Tests of the WIDER Pedestrian 2019 reader against the ground truth `make_dummy_data` wrote."""

import pathlib
from unittest import mock

import numpy as np
import pytest
from etils import epath

from tfds_builders import schema
from tfds_builders.wider_pedestrian import make_dummy_data, release

DUMMY = epath.Path(make_dummy_data.DUMMY_DIR)
FOLDERS = {'train': release.TRAIN_IMAGE_FOLDERS, 'val': release.VAL_IMAGE_FOLDERS,
           'test': ('test_data',)}


def _examples(split, root=DUMMY, stats=None):
    return dict(release.split_examples(root, split, FOLDERS[split], stats))


@pytest.mark.parametrize('split', ['train', 'val', 'test'])
def test_objects_match_the_written_ground_truth(split):
    examples = _examples(split)
    images = [i for i in make_dummy_data.SPLITS[split] if not i.corrupt]
    assert list(examples) == [i.name for i in images]  # list order, corrupt one left out
    for index, image in enumerate(images):
        example = examples[image.name]
        expected = image.kept_xyxy()
        np.testing.assert_array_equal(example['objects']['box'],
                                      np.reshape([b for b, _ in expected], (-1, 4)))
        np.testing.assert_array_equal(example['objects']['ignore'], [i for _, i in expected])
        assert list(example['objects']['person_id']) == [schema.NO_IDENTITY] * len(expected)
        assert example['protocol_index'] == index
        assert example['camera_id'] == schema.UNKNOWN_CAMERA
        assert example['image/filename'] == image.name
        assert example['image'] == DUMMY / image.folder / image.name


def test_image_without_pedestrians_is_kept_empty():
    example = _examples('train')['sur00002.jpg']
    assert example['objects']['box'].shape == (0, 4)


def test_box_leaving_the_image_is_clipped_in_bbox_only():
    stats = release.SplitStats()
    objects = _examples('train', stats=stats)['ad00001.jpg']['objects']
    assert objects['box'].tolist() == [[60, 10, 80, 25]]
    np.testing.assert_allclose(objects['bbox'], [[10 / 29, 60 / 74, 25 / 29, 1.0]], rtol=1e-6)
    assert stats.boxes_leaving_image == 1
    assert stats.zero_size_dropped == 1


def test_corrupt_jpeg_is_skipped_with_a_warning_and_counted():
    stats = release.SplitStats()
    with mock.patch.object(release.logging, 'warning') as warning:
        examples = _examples('train', stats=stats)
    assert 'sur03954.jpg' not in examples
    assert stats.corrupt == ['sur03954.jpg'] and stats.listed == 6
    warning.assert_called_once()
    assert 'sur03954.jpg' in str(warning.call_args.args[2])


def test_image_size_detects_truncation_and_reads_header(tmp_path):
    assert release.image_size(DUMMY / 'val_data' / 'ad00010.jpg') == (74, 29)
    with pytest.raises(release.CorruptImageError, match='truncated'):
        release.image_size(DUMMY / 'sur_train' / 'sur03954.jpg')
    padded = tmp_path / 'padded.jpg'  # trailing zeros after EOI: still fine
    padded.write_bytes((DUMMY / 'val_data' / 'ad00010.jpg').read_bytes() + b'\0' * 16)
    assert release.image_size(padded) == (74, 29)
    not_jpeg = tmp_path / 'x.jpg'
    not_jpeg.write_bytes(b'GIF89a')
    with pytest.raises(release.CorruptImageError, match='not a JPEG'):
        release.image_size(not_jpeg)


@pytest.mark.parametrize('line, message', [
    ('sur00001.jpg 1 2 3 4 1', '5 numbers, expected groups of 4'),
    ('sur00001.jpg 1 2 3 x', 'expected numbers x y w h'),
    ('sur00001.jpg 1 2 -3 4', 'negative width or height'),
    ('sur00001.jpg 1 2 nan 4', 'non-finite'),
])
def test_malformed_box_line_fails_with_file_and_line(tmp_path, line, message):
    path = tmp_path / 'train_bbox.txt'
    path.write_text('sur00002.jpg 1 1 2 2\n\n' + line + '\n')
    with pytest.raises(ValueError, match=message) as error:
        release.read_boxes(path)
    assert f'{path}:3' in str(error.value)


def _copy_release(tmp_path):
    make_dummy_data.write(tmp_path)
    return tmp_path


def test_box_outside_the_image_fails(tmp_path):
    root = _copy_release(tmp_path)
    (root / 'Annotations' / 'val_bbox.txt').write_text('sur00010.jpg 0 0 4 4 50 0 4 4\n')
    with pytest.raises(ValueError, match=r'val_bbox.txt:1: sur00010.jpg \(48x32\): boxes '
                                         r'entirely outside'):
        _examples('val', root=epath.Path(root))


def test_unlisted_annotated_image_and_duplicates_fail(tmp_path):
    root = _copy_release(tmp_path)
    annotations = root / 'Annotations'
    annotations.joinpath('val_ignore.txt').write_text('sur99999.jpg 0 0 4 4\n')
    with pytest.raises(ValueError, match='sur99999.jpg .* not listed'):
        _examples('val', root=epath.Path(root))
    annotations.joinpath('val_ignore.txt').write_text('')
    annotations.joinpath('val_list.txt').write_text('ad00010.jpg\nad00010.jpg\n')
    with pytest.raises(ValueError, match='val_list.txt:2: ad00010.jpg is already listed'):
        _examples('val', root=epath.Path(root))


def test_missing_image_fails_with_its_name(tmp_path):
    root = _copy_release(tmp_path)
    (root / 'ad_train' / 'ad_03' / 'ad00003.jpg').unlink()
    with pytest.raises(FileNotFoundError, match='image ad00003.jpg not found'):
        _examples('train', root=epath.Path(root))


def test_dummy_data_is_what_the_script_writes(tmp_path):
    make_dummy_data.write(tmp_path)
    committed_dir = pathlib.Path(make_dummy_data.DUMMY_DIR)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob('*') if p.is_file())
    committed = sorted(str(p.relative_to(committed_dir)) for p in committed_dir.rglob('*')
                       if p.is_file())
    assert written == committed
    for name in written:
        if not name.endswith('.jpg'):
            assert (tmp_path / name).read_text() == (committed_dir / name).read_text(), name
