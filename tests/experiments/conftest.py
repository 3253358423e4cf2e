"""Puts experiments/ on sys.path (its scripts import each other by module name, as they do when
run as `python experiments/<script>.py`) and this folder (the shared helpers); pytest's importlib
mode adds neither. The session fixture `table_root` trains the one detector of the session."""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.abspath(os.path.join(HERE, os.pardir, os.pardir, 'experiments')))
sys.path.insert(0, HERE)

import experiments_fixtures  # noqa: E402


@pytest.fixture(scope='session')
def table_root(tmp_path_factory):
    """Table 1d's J4 recipe run on the dummy releases: (root, TFDS data dir, stdout). Its
    aggregated ("all4") detection run is the session's one detector."""
    root, data_dir = tmp_path_factory.mktemp('table1'), tmp_path_factory.mktemp('tfds')
    result = experiments_fixtures.run_recipes(root, data_dir, '1d_J4')
    return root, data_dir, result.stdout
