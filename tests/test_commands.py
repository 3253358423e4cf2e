"""The installed commands (setup.cfg's console scripts) and the checkout scripts run the same
programs in ps_tf/commands/, and each lists its own flags in its short help."""

import ast
import configparser
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPTS = {   # checkout script -> command module
    'train.py': 'train', 'evaluate.py': 'evaluate', 'search.py': 'search',
    'export/export_saved_model.py': 'export', 'export/serving_client.py': 'serving_client',
    'preview.py': 'preview',
}


def console_scripts() -> dict[str, str]:
    """setup.cfg's console scripts: command -> 'module:function'."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / 'setup.cfg')
    lines = parser['options.entry_points']['console_scripts'].strip().splitlines()
    return dict(tuple(part.strip() for part in line.split('=')) for line in lines)


def defined_functions(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_every_command_module_is_installed_and_defines_cli():
    scripts = console_scripts()
    modules = sorted(p.stem for p in (ROOT / 'ps_tf' / 'commands').glob('*.py')
                     if p.stem != '__init__')
    assert sorted(target.split(':')[0] for target in scripts.values()) == [
        f'ps_tf.commands.{m}' for m in modules]
    for command, target in scripts.items():
        module, function = target.split(':')
        assert command == 'ps-' + module.rsplit('.', 1)[1].replace('_', '-')
        path = ROOT.joinpath(*module.split('.')).with_suffix('.py')
        assert function in defined_functions(path), f'{path} has no {function}()'


@pytest.mark.parametrize('script', sorted(SCRIPTS))
def test_checkout_scripts_run_the_command_modules(script):
    tree = ast.parse((ROOT / script).read_text())
    imports = [(node.module, [a.name for a in node.names]) for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom)]
    assert imports == [(f'ps_tf.commands.{SCRIPTS[script]}', ['cli'])], script


def _installed(command: str) -> str:
    path = shutil.which(command, path=os.path.dirname(sys.executable))
    assert path, (f'{command} is not installed next to {sys.executable}: '
                  f'pip install -e . installs the commands')
    return path


def test_installed_command_and_script_list_their_own_flags():
    """absl's short help lists the flags of the file the user ran; the commands' flags live in
    an imported module, so `ps_tf.commands.run` declares them for it (else the help is empty)."""
    runs = {'ps-search': [_installed('ps-search'), '--helpshort'],
            'ps-train': [_installed('ps-train'), '--helpshort'],
            'export/serving_client.py': [sys.executable, str(ROOT / 'export' / 'serving_client.py'),
                                         '--helpshort']}
    processes = {name: subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, cwd=ROOT) for name, argv in runs.items()}
    outputs = {name: process.communicate(timeout=300) for name, process in processes.items()}
    assert '--gallery' in outputs['ps-search'][0], outputs['ps-search'][1][-2000:]
    assert '--query_box' in outputs['ps-search'][0]
    # The settings' help: the config docstring's description and the presets' values.
    train = ' '.join(outputs['ps-train'][0].split())   # absl wraps the help lines
    assert '--reid.identities_per_batch: P, identities per stage-2 batch.' in train, train[-2000:]
    assert 'presets: paper: 32, synthetic: 16, tiny: 2' in train
    assert 'Override the preset' not in train
    client = outputs['export/serving_client.py']
    assert '--server' in client[0] and '--protocol' in client[0], client[1][-2000:]
