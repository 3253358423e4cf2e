"""`benchmarks/runtime_table.py` end to end on a tiny setting: it runs and writes a report with
every model's rows and the FLOP-ideal ratios (no timing is checked). One joint variant and
Disj: each model is a ResNet-50 graph to build and trace, the bulk of the test's time."""

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS = ('J4', 'Disj')   # J2 and J3 take the same code path as J4


@pytest.mark.experiment
def test_runtime_table_runs_end_to_end(tmp_path):
    output = tmp_path / 'runtime.json'
    result = subprocess.run(
        [sys.executable, str(ROOT / 'benchmarks' / 'runtime_table.py'), '--image_size=64',
         '--batch_sizes=1', '--people=2', f'--models={",".join(MODELS)}', '--repeats=1',
         '--warmup=0', '--precisions=float32',
         f'--output_json={output}'], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(output.read_text())
    rows = {row['model']: row for row in report['rows']}
    assert set(rows) == {'detector', *MODELS}
    # Fewer FLOPs than Disj with the same people: an ideal ratio above 1.
    assert rows['J4']['flop_ideal_ratio'] > 1.0
    assert rows['J4']['disj_ratio'] > 0.0
    assert all(row['ms_per_image'] > 0 and row['batch'] == 1 and row['people'] == 2
               for row in rows.values())
    assert report['flops_per_image']['J4']['2'] < report['flops_per_image']['Disj']['2']
    assert report['machine']['cores'] >= 1
    assert '| J4 | 1 |' in result.stdout   # the printed table
