"""TFDS's own builder checks on the `tiny` config (splits, counts, features, keys)."""

import pathlib

import tensorflow_datasets as tfds

from tfds_builders.synthetic_attributes import synthetic_attributes_dataset_builder


class SyntheticAttributesTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = synthetic_attributes_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ['tiny']
    # Nothing is downloaded; the harness still wants a folder to point the download manager at.
    EXAMPLE_DIR = pathlib.Path(__file__).parent
    SPLITS = {'train': 48, 'validation': 16}


if __name__ == '__main__':
    tfds.testing.test_main()
