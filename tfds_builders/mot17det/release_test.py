"""Tests of the MOT17Det reader against the ground truth `make_dummy_data` wrote."""

import pathlib
import shutil

import numpy as np
import pytest
from etils import epath

from tfds_builders import schema
from tfds_builders.mot17det import make_dummy_data, release

DUMMY = epath.Path(make_dummy_data.DUMMY_DIR)
SEQUENCES = {s.name: s for s in make_dummy_data.TRAIN}


def _train_examples(min_visibility=0.0):
    return dict(release.split_examples(DUMMY / 'train', labelled=True,
                                       min_visibility=min_visibility))


@pytest.mark.parametrize('min_visibility, vis25', [(0.0, False), (0.25, True)])
def test_train_objects_match_the_written_ground_truth(min_visibility, vis25):
    examples = _train_examples(min_visibility)
    expected_keys = []
    for sequence in make_dummy_data.TRAIN:
        for frame, boxes in make_dummy_data.expected_frames(sequence, vis25).items():
            key = f'{sequence.name}/img1/{frame:06d}.jpg'
            expected_keys.append(key)
            objects = examples[key]['objects']
            np.testing.assert_array_equal(objects['box'], np.reshape([b for b, _ in boxes],
                                                                     (-1, 4)))
            np.testing.assert_array_equal(objects['ignore'], [i for _, i in boxes])
            np.testing.assert_array_equal(objects['person_id'], [schema.NO_IDENTITY] * len(boxes))
            assert examples[key]['camera_id'] == int(sequence.name[-2:])
            assert examples[key]['image/filename'] == key
    assert list(examples) == expected_keys  # natural order: sequences by name, frames ascending
    assert [e['protocol_index'] for e in examples.values()] == list(range(len(expected_keys)))


def test_boxes_leaving_the_image_are_clipped_in_bbox_only():
    objects = _train_examples()['MOT17-02/img1/000002.jpg']['objects']
    # Row (-5, -4, 12, 10) on the 64x48 image: box as annotated, bbox clipped to [0, 1].
    assert objects['box'][1].tolist() == [-5, -4, 7, 6]
    np.testing.assert_allclose(objects['bbox'][1], [0, 0, 6 / 48, 7 / 64], rtol=1e-6)
    objects = _train_examples()['MOT17-02/img1/000001.jpg']['objects']
    np.testing.assert_allclose(objects['bbox'][1], [30 / 48, 50 / 64, 1, 1], rtol=1e-6)


def test_frame_without_rows_has_no_objects():
    example = _train_examples()['MOT17-02/img1/000003.jpg']
    assert example['objects']['box'].shape == (0, 4)
    assert example['objects']['bbox'].shape == (0, 4)


def test_test_split_has_frames_without_objects():
    examples = dict(release.split_examples(DUMMY / 'test', labelled=False))
    assert list(examples) == ['MOT17-01/img1/000001.jpg', 'MOT17-01/img1/000002.jpg']
    assert all(len(e['objects']['box']) == 0 for e in examples.values())
    assert all(e['camera_id'] == 1 for e in examples.values())


def test_seqinfo_with_extra_keys_and_key_case():
    info = release.read_seqinfo(DUMMY / 'train' / 'MOT17-05' / 'seqinfo.ini')
    assert info == release.SequenceInfo(name='MOT17-05', im_dir='img1', seq_length=2, width=40,
                                        height=30, im_ext='.jpg', frame_rate=14.0)


@pytest.mark.parametrize('text, message', [
    ('[Sequence]\nname=X\nimDir=img1\nseqLength=2\nimWidth=4\n', "lacks the required keys"),
    ('[Sequence]\nname=X\nimDir=img1\nseqLength=two\nimWidth=4\nimHeight=3\n',
     'seqLength=.two., expected a positive integer'),
    ('[Seq]\nname=X\n', r'no \[Sequence\] section'),
])
def test_bad_seqinfo_fails_with_file_and_key(tmp_path, text, message):
    path = tmp_path / 'seqinfo.ini'
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        release.read_seqinfo(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize('line, message', [
    ('1,1,10,5,20,30,1,1', '8 columns, expected 9'),
    ('1,1,10,5,twenty,30,1,1,1', 'expected 9 numbers'),
    ('9,1,10,5,20,30,1,1,1', r'frame 9 outside 1..3'),
    ('1.5,1,10,5,20,30,1,1,1', 'frame=1.5, expected an integer'),
    ('1,1,10,5,-20,30,1,1,1', 'negative bb_width'),
])
def test_malformed_gt_line_fails_with_file_and_line(tmp_path, line, message):
    path = tmp_path / 'gt.txt'
    path.write_text('1,1,10,5,20,30,1,1,1\n' + line + '\n')
    info = release.SequenceInfo('MOT17-02', 'img1', 3, 64, 48)
    with pytest.raises(ValueError, match=message) as error:
        release.read_gt(path, info, 0.0)
    assert f'{path}:2' in str(error.value)


def test_gt_stats_count_every_row():
    sequence = SEQUENCES['MOT17-02']
    info = release.read_seqinfo(DUMMY / 'train' / sequence.name / 'seqinfo.ini')
    _, stats = release.read_gt(DUMMY / 'train' / sequence.name / 'gt' / 'gt.txt', info, 0.0)
    expect = [r.expect for r in sequence.rows]
    assert stats.rows == len(sequence.rows)
    assert stats.positives == expect.count('positive')
    assert stats.ignore_regions == expect.count('ignore')
    assert stats.dropped_class + stats.dropped_outside == expect.count('dropped')
    assert stats.dropped_outside == 1


def test_missing_frame_and_tracking_release_fail(tmp_path):
    root = tmp_path / 'train'
    shutil.copytree(DUMMY / 'train', root)
    (root / 'MOT17-05' / 'img1' / '000002.jpg').unlink()
    with pytest.raises(FileNotFoundError, match='1 of 2 frames'):
        list(release.split_examples(root, labelled=True))
    shutil.rmtree(root / 'MOT17-05')
    (root / 'MOT17-02').rename(root / 'MOT17-02-FRCNN')
    with pytest.raises(ValueError, match='tracking release'):
        list(release.split_examples(root, labelled=True))


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
