"""Makes `tests/fixtures/` (helper modules shared by test folders, e.g. `search_fixtures`)
importable: the project runs pytest with --import-mode=importlib, which does not put test folders
on sys.path. Only that folder: `tests/` itself holds folders named like top-level packages
(`tfds_builders`, `experiments`, `benchmarks`) that would shadow them."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures'))
