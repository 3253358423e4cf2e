"""Fixtures shared by every test folder (tests/ and tfds_builders/)."""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import pytest  # noqa: E402


@pytest.fixture(scope='session')
def tiny_synthetic_data_dir(tmp_path_factory):
    """A TFDS data_dir holding `synthetic_person_search/tiny`, built once per test session."""
    import tensorflow_datasets as tfds

    import tfds_builders  # noqa: F401

    data_dir = tmp_path_factory.mktemp('tfds')
    tfds.builder('synthetic_person_search/tiny', data_dir=str(data_dir)).download_and_prepare()
    return str(data_dir)
