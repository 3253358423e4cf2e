"""The import rule of ps_tf/__init__.py: every import points down the layers, and nothing but the
training command (ps_tf/commands/train.py) imports ps_tf.training. Read from the source (AST),
imports inside functions included, so the test needs no TensorFlow and catches a lazy import
too."""

import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

LAYERS = {   # package or module prefix -> layer; the longest matching prefix wins
    'ps_tf.config': 0, 'ps_tf.precision': 0, 'ps_tf.atomic': 0, 'ps_tf.schedules': 0,
    'ps_tf.quiet': 0, 'ps_tf.graph_cost': 0, 'ps_tf.ops': 0,
    'ps_tf.data': 1,
    'ps_tf.models': 2,
    'ps_tf.losses': 3,
    'ps_tf.evaluation': 4, 'ps_tf.serving': 4, 'ps_tf.search': 4, 'ps_tf.visualization': 4,
    'ps_tf.export': 4, 'ps_tf.serving_client': 4, 'ps_tf.app': 4,
    'ps_tf.training': 5,
    'ps_tf.commands': 6,
}
LAYER_NAMES = ['foundation', 'data', 'models', 'losses', 'applications', 'training', 'commands']
TRAINING_COMMAND = 'ps_tf/commands/train.py'


def layer_of(module: str) -> int:
    parts = module.split('.')
    for end in range(len(parts), 0, -1):
        prefix = '.'.join(parts[:end])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise KeyError(f'{module}: not in any layer of tests/test_layers.py (add it there and to the '
                   f'ps_tf/__init__.py docstring)')


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts = parts[:-1]
    return '.'.join(parts)


def imports(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, nested ones included. `from a
    import b` counts as `a.b` when `a.b` is a module of this repository, else as `a`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f'{node.module}.{alias.name}'
                as_path = ROOT.joinpath(*candidate.split('.'))
                is_module = as_path.with_suffix('.py').exists() or as_path.is_dir()
                found.append((node.lineno, candidate if is_module else node.module))
    return found


def python_files(*folders: str) -> list[pathlib.Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob('*.py'))


def test_imports_point_down_the_layers():
    upward = []
    for path in python_files('ps_tf'):
        here = module_name(path)
        for line, imported in imports(path):
            if imported.startswith('ps_tf') and layer_of(imported) > layer_of(here):
                upward.append(f'{path.relative_to(ROOT)}:{line}: {here} '
                              f'({LAYER_NAMES[layer_of(here)]}) imports {imported} '
                              f'({LAYER_NAMES[layer_of(imported)]})')
    assert not upward, 'imports pointing up the layers:\n' + '\n'.join(upward)


def test_only_the_training_command_imports_training():
    outside = [path for path in python_files('ps_tf', 'export', 'benchmarks', 'experiments')
               + sorted(ROOT.glob('*.py'))
               if path.relative_to(ROOT).as_posix() != TRAINING_COMMAND
               and module_name(path).split('.')[:2] != ['ps_tf', 'training']]
    offenders = [f'{path.relative_to(ROOT)}:{line}: imports {imported}'
                 for path in outside for line, imported in imports(path)
                 if imported.startswith('ps_tf.training')]
    assert not offenders, '\n'.join(offenders)


def test_dataset_builders_import_nothing_from_ps_tf():
    offenders = [f'{path.relative_to(ROOT)}:{line}: imports {imported}'
                 for path in python_files('tfds_builders') for line, imported in imports(path)
                 if imported.split('.')[0] == 'ps_tf']
    assert not offenders, '\n'.join(offenders)


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The rule can fail: a models module importing training is reported."""
    package = tmp_path / 'ps_tf' / 'models'
    package.mkdir(parents=True)
    (tmp_path / 'ps_tf' / 'training').mkdir()
    (tmp_path / 'ps_tf' / 'training' / 'reid.py').write_text('')
    bad = package / 'bad.py'
    bad.write_text('def f():\n    from ps_tf.training import reid\n')
    monkeypatch.setattr(sys.modules[__name__], 'ROOT', tmp_path)
    assert imports(bad) == [(2, 'ps_tf.training.reid')]
    with pytest.raises(AssertionError, match='bad.py:2: ps_tf.models.bad .models. imports '
                                             'ps_tf.training.reid .training.'):
        test_imports_point_down_the_layers()
