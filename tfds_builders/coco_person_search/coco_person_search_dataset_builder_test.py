"""Builds coco_person_search from `dummy_data/` with the TFDS test harness."""

import json

import pytest
import tensorflow_datasets as tfds

from tfds_builders.coco_person_search import coco_person_search_dataset_builder, make_dummy_data


class CocoPersonSearchTest(tfds.testing.DatasetBuilderTestCase):
    """3 train images; 5 test images as gallery; 5 derived queries."""
    DATASET_CLASS = coco_person_search_dataset_builder.Builder
    SPLITS = {'train': 3, 'gallery': 5, 'query': len(make_dummy_data.EXPECTED_DERIVED_QUERIES)}


def _build(manual_dir, data_dir):
    builder = coco_person_search_dataset_builder.Builder(data_dir=str(data_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


def test_missing_annotation_folder_names_the_expected_tree(tmp_path):
    (tmp_path / 'images').mkdir()
    with pytest.raises(FileNotFoundError, match='missing in .*annotations') as error:
        _build(tmp_path, tmp_path / 'out')
    assert 'test.json' in str(error.value)  # the expected tree


def test_test_json_only_and_no_identity_builds_gallery_only(tmp_path):
    make_dummy_data.write(tmp_path / 'data')
    (tmp_path / 'data' / 'annotations' / 'train.json').unlink()
    test_json = tmp_path / 'data' / 'annotations' / 'test.json'
    data = json.loads(test_json.read_text())
    for annotation in data['annotations']:
        annotation.pop('person_id', None)
    test_json.write_text(json.dumps(data))
    builder = _build(tmp_path / 'data', tmp_path / 'out')
    assert set(builder.info.splits) == {'gallery'}
    assert builder.info.splits['gallery'].num_examples == 5


if __name__ == '__main__':
    tfds.testing.test_main()
