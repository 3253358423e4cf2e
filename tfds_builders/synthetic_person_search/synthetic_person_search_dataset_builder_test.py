"""TFDS's own builder checks on the `tiny` config (splits, counts, features, keys)."""

import pathlib

import tensorflow_datasets as tfds

from tfds_builders.synthetic_person_search import synthetic_person_search_dataset_builder


class SyntheticPersonSearchTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = synthetic_person_search_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ['tiny']
    # Nothing is downloaded; the harness still wants a folder to point the download manager at.
    EXAMPLE_DIR = pathlib.Path(__file__).parent
    SPLITS = {'train': 8, 'gallery': 5, 'query': 3}


if __name__ == '__main__':
    tfds.testing.test_main()
