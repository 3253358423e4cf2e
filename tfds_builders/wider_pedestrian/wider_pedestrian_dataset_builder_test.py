"""Builds WIDER Pedestrian 2019 from `dummy_data/` with the TFDS test harness."""

import shutil
from unittest import mock

import pytest
import tensorflow_datasets as tfds

from tfds_builders import build_checks
from tfds_builders.wider_pedestrian import make_dummy_data, release
from tfds_builders.wider_pedestrian import wider_pedestrian_dataset_builder


class WiderPedestrianTest(tfds.testing.DatasetBuilderTestCase):
    """6 listed train images, one corrupt (skipped); 3 val; the optional test split with 2."""
    DATASET_CLASS = wider_pedestrian_dataset_builder.Builder
    SPLITS = {'train': 5, 'val': 3, 'test': 2}


def _build(manual_dir, data_dir):
    builder = wider_pedestrian_dataset_builder.Builder(data_dir=str(data_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


def test_without_test_list_there_is_no_test_split(tmp_path):
    make_dummy_data.write(tmp_path / 'release')
    (tmp_path / 'release' / 'Annotations' / 'test_list.txt').unlink()
    shutil.rmtree(tmp_path / 'release' / 'test_data')
    builder = _build(tmp_path / 'release', tmp_path / 'out')
    assert set(builder.info.splits) == {'train', 'val'}


def test_missing_annotation_file_names_the_expected_tree(tmp_path):
    make_dummy_data.write(tmp_path / 'release')
    (tmp_path / 'release' / 'Annotations' / 'val_ignore.txt').unlink()
    with pytest.raises(FileNotFoundError, match='val_ignore.txt') as error:
        _build(tmp_path / 'release', tmp_path / 'out')
    assert 'ad_train/ad_01' in str(error.value)  # the expected tree


def test_test_list_without_test_images_fails(tmp_path):
    make_dummy_data.write(tmp_path / 'release')
    shutil.rmtree(tmp_path / 'release' / 'test_data')
    with pytest.raises(FileNotFoundError, match='test image folders'):
        _build(tmp_path / 'release', tmp_path / 'out')


def test_val_counts_differing_from_the_release_only_warn():
    examples = release.split_examples(make_dummy_data.DUMMY_DIR, 'val', release.VAL_IMAGE_FOLDERS)
    with mock.patch.object(build_checks.logging, 'warning') as warning:
        found = list(build_checks.count_examples(
            'wider_pedestrian', 'val', examples,
            wider_pedestrian_dataset_builder.EXPECTED_COUNTS['val']))
    assert len(found) == 3
    assert [c.args[2:] for c in warning.call_args_list] == [
        ('val', 3, 'images', 5000), ('val', 3, 'boxes', 20052)]


if __name__ == '__main__':
    tfds.testing.test_main()
