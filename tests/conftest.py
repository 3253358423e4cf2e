"""Makes this folder's helper modules (`search_fixtures`) importable: the project runs pytest with
--import-mode=importlib, which does not put test folders on sys.path."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
