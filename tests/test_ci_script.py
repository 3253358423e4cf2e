""".ci/run stops at the first failing step: run on a copy of the script with stand-ins for
Python, pip, flake8 and pytest (nothing is installed), a lint failure fails CI before any test
runs. `set -e` alone does not do it: inside README's `... && flake8 && pytest` list a failing
flake8 only skipped the suite, and CI went on to the experiment tests and passed (it did once)."""

import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# `python -m venv .venv` makes a venv of stand-ins: pip succeeds, flake8 exits with $LINT_STATUS,
# pytest appends its arguments to calls.txt; `-c` (find_python311's version check) succeeds.
FAKE_PYTHON = '''#!/bin/sh
case "$1" in
  --version) echo "Python 3.11.7" ;;
  -c) exit 0 ;;
  -m)
    mkdir -p .venv/bin
    printf '#!/bin/sh\\nexit 0\\n' > .venv/bin/pip
    printf '#!/bin/sh\\nexit %s\\n' "$LINT_STATUS" > .venv/bin/flake8
    printf '#!/bin/sh\\necho "pytest $*" >> calls.txt\\n' > .venv/bin/pytest
    chmod +x .venv/bin/pip .venv/bin/flake8 .venv/bin/pytest ;;
  *) exit 2 ;;
esac
'''


def _run_ci(tmp_path: pathlib.Path, lint_status: int) -> tuple[subprocess.CompletedProcess, str]:
    (tmp_path / '.ci').mkdir()
    for name in ('run', 'find_python311.sh'):
        shutil.copy(ROOT / '.ci' / name, tmp_path / '.ci' / name)
    stand_ins = tmp_path / 'bin'
    stand_ins.mkdir()
    python = stand_ins / 'python3.11'
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    for tool in ('chromedriver', 'unshare', 'ip'):   # present: no apt-get
        (stand_ins / tool).write_text('#!/bin/sh\nexit 0\n')
        (stand_ins / tool).chmod(0o755)
    result = subprocess.run(
        [shutil.which('bash'), str(tmp_path / '.ci' / 'run')], capture_output=True, text=True,
        timeout=60, env={'PATH': f'{stand_ins}:/usr/bin:/bin', 'HOME': str(tmp_path),
                         'LINT_STATUS': str(lint_status)})
    calls = tmp_path / 'calls.txt'
    return result, calls.read_text() if calls.exists() else ''


@pytest.mark.parametrize('lint_status', [1, 3])
def test_a_lint_failure_fails_ci_before_any_test(tmp_path, lint_status):
    result, calls = _run_ci(tmp_path, lint_status)
    assert result.returncode == lint_status, result.stderr
    assert calls == ''   # neither the suite nor the experiment tests ran


def test_clean_lint_runs_the_suite_then_the_experiment_tests(tmp_path):
    result, calls = _run_ci(tmp_path, 0)
    assert result.returncode == 0, result.stderr
    assert calls.splitlines() == ['pytest ', 'pytest -m experiment -n 0']
