"""Fixtures shared by every test folder (tests/ and tfds_builders/)."""

import functools
import os
import re

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


@functools.lru_cache(maxsize=None)
def _holds_module_fixture(path: str) -> bool:
    """Whether the test file at `path` defines a module- or class-scoped fixture."""
    try:
        with open(path, encoding='utf-8') as file:
            return re.search(r"scope=['\"](module|class)['\"]", file.read()) is not None
    except OSError:
        return False


def pytest_collection_modifyitems(config, items):
    """Tests marked `slow` first: the workers take the long units (a long test, or a whole file
    that builds a module-scoped fixture and holds a slow test) before the short ones, so the run
    does not end with one worker finishing a long test while the other idles (longest first,
    the usual makespan rule). Files keep their own order of tests (a module fixture's tests may
    rely on it); the sort is stable."""
    slow_files = {str(item.path) for item in items
                  if item.get_closest_marker('slow') and _holds_module_fixture(str(item.path))}

    def is_long(item) -> bool:
        return item.get_closest_marker('slow') is not None or str(item.path) in slow_files

    items.sort(key=lambda item: not is_long(item))


def pytest_xdist_make_scheduler(config, log):
    """`--dist=loadscope` (setup.cfg) with one change: a work unit is a whole file only when the
    file builds a module-scoped fixture (a trained tiny model, an exported SavedModel), so that
    fixture is built once; every other test is a unit of its own. With whole files as units
    (`--dist=loadfile`), a file holding several slow tests kept one worker busy long after the
    other had finished. (`--dist=loadgroup` would say this with markers, but pytest-xdist 3.8
    cannot group under pytest 9: it renames `item._nodeid`, which pytest 9 no longer reads.)
    """
    if config.getvalue('dist') != 'loadscope':
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split('::')[0]
            return path if _holds_module_fixture(str(config.rootpath / path)) else nodeid

    return ModuleFixtureScheduling(config, log)
