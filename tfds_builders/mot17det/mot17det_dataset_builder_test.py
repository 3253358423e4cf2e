"""Builds MOT17Det from `dummy_data/` with the TFDS test harness (both configs)."""

from unittest import mock

import pytest
import tensorflow_datasets as tfds

from tfds_builders import build_checks
from tfds_builders.mot17det import mot17det_dataset_builder, release


class Mot17DetTest(tfds.testing.DatasetBuilderTestCase):
    """MOT17-02 (3 frames) + MOT17-05 (2 frames) in train, MOT17-01 (2 frames) in test."""
    DATASET_CLASS = mot17det_dataset_builder.Builder
    SPLITS = {'train': 5, 'test': 2}


def test_missing_split_folder_names_the_expected_tree(tmp_path):
    (tmp_path / 'train').mkdir()
    builder = mot17det_dataset_builder.Builder(data_dir=str(tmp_path / 'out'))
    config = tfds.download.DownloadConfig(manual_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match='missing in .*test') as error:
        builder.download_and_prepare(download_config=config)
    assert 'seqinfo.ini' in str(error.value)  # the expected tree


def test_counts_differing_from_the_release_only_warn():
    examples = release.split_examples(mot17det_dataset_builder.Builder.code_path.parent /
                                      'dummy_data' / 'train', labelled=True)
    with mock.patch.object(build_checks.logging, 'warning') as warning:
        found = list(build_checks.count_examples(
            'mot17det', 'train', examples, mot17det_dataset_builder.EXPECTED_COUNTS['train']))
    assert len(found) == 5
    warning.assert_called_once()
    assert warning.call_args.args[2:] == ('train', 5, 'images', 5316)


if __name__ == '__main__':
    tfds.testing.test_main()
