"""sharing_depth_table.py: evaluate.py JSON files of several variants and seeds become the table
(mean ± sample std over seeds, each seed's value) and the GT-box plot; bad entries are named."""

import json
import pathlib
import subprocess
import sys

import pytest

import sharing_depth_table

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / 'experiments' / 'sharing_depth_table.py'


def write_evaluation(prefix: pathlib.Path, domain: str, mAP: float) -> None:
    """An evaluate.py --output_json file with results at gallery sizes 50 and 100."""
    results = [{'gallery_size': 50, 'mAP': 0.99}, {'gallery_size': 100, 'mAP': mAP}]
    pathlib.Path(f'{prefix}_{domain}.json').write_text(
        json.dumps({'dataset': f'synthetic_person_search/{domain}', 'results': results}))


@pytest.fixture
def runs(tmp_path):
    """J3 over two seeds in both domains, Disj one seed with only `default` on disk."""
    for seed, (default, domain_b) in enumerate([(0.10, 0.30), (0.20, 0.50)]):
        write_evaluation(tmp_path / f'j3_s{seed}', 'default', default)
        write_evaluation(tmp_path / f'j3_s{seed}', 'domain_b', domain_b)
    write_evaluation(tmp_path / 'disj', 'default', 0.40)
    return [f'J3:0:gt={tmp_path / "j3_s0"}', f'J3:1:gt={tmp_path / "j3_s1"}',
            f'Disj:0:gt={tmp_path / "disj"}']


def test_means_and_spreads_over_seeds_at_the_gallery_size(runs, tmp_path):
    values, missing = sharing_depth_table.collect(runs, gallery_size=100)
    assert values[('J3', 'gt', 'default')] == {0: 0.10, 1: 0.20}
    assert missing == [f'{tmp_path / "disj"}_domain_b.json']
    table = sharing_depth_table.markdown_table(values)
    rows = table.splitlines()[2:]
    # J3: mean 0.150, sample std 0.071 in domain; 0.400 ± 0.141 on domain_b.
    assert rows[0] == ('| J3 | gt | 0.150 ± 0.071 (0.100, 0.200) | 0.400 ± 0.141 (0.300, 0.500) '
                       '| 0, 1 |')
    assert rows[1] == '| Disj | gt | 0.400 (0.400) | – | 0 |'


def test_the_script_prints_the_table_and_draws_the_plot(runs, tmp_path):
    png = tmp_path / 'plot.png'
    result = subprocess.run([sys.executable, str(SCRIPT), f'--runs={",".join(runs)}',
                             f'--plot={png}'], capture_output=True, text=True, timeout=120,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert '| J3 | gt | 0.150 ± 0.071' in result.stdout
    assert 'missing (left out)' in result.stdout
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


@pytest.mark.parametrize('entry, message', [
    ('J3:0=prefix', 'VARIANT:SEED:BOXES=PREFIX'),
    ('J3:x:gt=prefix', "seed 'x'"),
    ('J3:0:crops=prefix', "got 'crops'"),
])
def test_a_malformed_run_is_named(entry, message):
    with pytest.raises(ValueError, match=message):
        sharing_depth_table.parse_run(entry)


def test_a_file_without_the_gallery_size_is_named(tmp_path):
    write_evaluation(tmp_path / 'j3', 'default', 0.1)
    with pytest.raises(ValueError, match=r'j3_default.json has no result at gallery size 200'):
        sharing_depth_table.read_result(f'{tmp_path / "j3"}_default.json', 200)
