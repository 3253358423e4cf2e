"""TFDS builders of ps_tf: one folder per dataset, all writing the schema of `schema.py`.

Importing this package registers every builder with TFDS, so that after `import tfds_builders`
`tfds.builder('synthetic_person_search/tiny')` (or `cuhk_sysu`, `prw`, ...) works. Builders are
found by their folder: `<name>/<name>_dataset_builder.py` defining `class Builder`.
"""

import importlib
import pathlib

_HERE = pathlib.Path(__file__).parent


def builder_names() -> list[str]:
    """Names of the datasets this package provides (one per builder folder)."""
    return sorted(p.parent.name for p in _HERE.glob('*/*_dataset_builder.py')
                  if p.stem == f'{p.parent.name}_dataset_builder')


for _name in builder_names():
    importlib.import_module(f'{__name__}.{_name}.{_name}_dataset_builder')
