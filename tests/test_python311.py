""".ci/find_python311.sh, which demo.sh and .ci/run use to find Python 3.11: python3.11 on PATH,
else uv's, else a clear way to get one. Run with a PATH of stand-ins (no demo.sh, no .ci/run:
those would go on to build a venv)."""

import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
HELPER = ROOT / '.ci' / 'find_python311.sh'


def _executable(path: pathlib.Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def _find(bin_dir: pathlib.Path, **env) -> subprocess.CompletedProcess:
    for tool in ('cat',):
        if not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(shutil.which(tool))
    return subprocess.run([shutil.which('bash'), '-c',
                           f'set -euo pipefail; . "{HELPER}"; find_python311'],
                          env={'PATH': str(bin_dir), 'HOME': str(bin_dir), **env},
                          capture_output=True, text=True, timeout=60)


def test_scripts_use_the_helper():
    for script in ('demo.sh', '.ci/run'):
        text = (ROOT / script).read_text()
        assert '. .ci/find_python311.sh' in text and 'PYTHON=$(find_python311)' in text
    assert (ROOT / 'docs' / 'python311.md').exists()


def test_python311_on_path_comes_first(tmp_path):
    (tmp_path / 'python3.11').symlink_to(sys.executable)
    _executable(tmp_path / 'uv', '#!/bin/sh\nexit 3\n')
    result = _find(tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == str(tmp_path / 'python3.11')


def test_without_python311_on_path_uv_finds_one(tmp_path):
    # python3 is a 3.12 (it fails the version check); uv knows a 3.11: this test's interpreter,
    # a virtual environment's, so the interpreter it was made from is taken.
    _executable(tmp_path / 'python3', '#!/bin/sh\nexit 1\n')
    _executable(tmp_path / 'uv', '#!/bin/sh\n[ "$*" = "python find 3.11" ] || exit 2\n'
                                 f'echo "{sys.executable}"\n')
    result = _find(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == getattr(sys, '_base_executable', sys.executable)


def test_without_any_python311_says_how_to_get_one(tmp_path):
    _executable(tmp_path / 'python3', '#!/bin/sh\nexit 1\n')
    result = _find(tmp_path)
    assert result.returncode == 1 and result.stdout == ''
    assert 'ps_tf needs Python 3.11' in result.stderr
    assert 'pip install uv && uv python install 3.11' in result.stderr
    assert 'deadsnakes' in result.stderr and 'docs/python311.md' in result.stderr
    # A PYTHON that is not 3.11 is refused, not replaced.
    (tmp_path / 'python3.11').symlink_to(sys.executable)
    refused = _find(tmp_path, PYTHON=str(tmp_path / 'python3'))
    assert refused.returncode == 1 and 'is not one' in refused.stderr
    assert _find(tmp_path, PYTHON=sys.executable).stdout.strip() == sys.executable
