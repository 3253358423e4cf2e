"""cpu_findings.py: the plan (one detection run per seed and data mix for every variant), the
report (mean ± std over seeds, paired deltas, plots) from fabricated results, and a real `--quick`
run end to end on tiny datasets."""

import json
import pathlib
import subprocess
import sys

import pytest

import experiments_fixtures
import findings_report
import step_runner

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / 'experiments' / 'cpu_findings.py'
DEFAULT, UNSEEN = 'synthetic_person_search/default', 'synthetic_person_search/domain_b'


def _run(*flags, timeout=120):
    result = subprocess.run([sys.executable, str(SCRIPT), *flags], capture_output=True,
                            text=True, timeout=timeout, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_dry_run_shares_each_detection_run_and_prints_the_estimate(tmp_path):
    stdout = _run(f'--root={tmp_path / "runs"}', '--dry_run', '--data_dir=/data/tfds')
    assert 'estimated' in stdout and ' h) on 2 quiet cores' in stdout
    assert stdout.count('--stage=detection') == 3 * 2          # seeds x (single, aggregated)
    assert stdout.count('--stage=features') == 3 * 2 * 3       # ... x variants
    assert stdout.count('python evaluate.py') == 3 * 2 * 3 * 4  # ... x {default, unseen} x {GT}
    assert stdout.count('--detection_model_dir=') == 2 * 3 * 2 * 3
    assert 'synthetic_person_search/default:1,synthetic_person_search/detection_only:1' in stdout
    speed = next(line for line in stdout.splitlines() if 'benchmarks/runtime_table.py' in line)
    assert '--data_dir' not in speed   # the benchmark has no such flag
    assert not (tmp_path / 'runs').exists()


def test_dry_run_of_the_cpu_budget_plan(tmp_path):
    # Findings 2 and 3 on one variant, GT boxes for it only, a shorter schedule.
    stdout = _run(f'--root={tmp_path / "runs"}', '--dry_run', '--pair_variants=J2',
                  '--gt_boxes=pairs', '--extra_flags=--epochs=2 --steps_per_epoch=150 '
                  '--reid.semi_hard_epochs=5 --reid.hard_epochs=5')
    assert stdout.count('--stage=detection') == 3 * 2
    assert stdout.count('--stage=features') == 3 * (3 + 1)      # aggregated J2-J4, single J2
    assert stdout.count('--model_dir={root}/seed0/reid/single_'.replace(
        '{root}', str(tmp_path / 'runs'))) == 2                   # single J2: features, reid
    # J2 on both mixes: {default, domain_b} x {predicted, GT}; J3 and J4: default, predicted.
    assert stdout.count('--use_gt_boxes') == 3 * 2 * 2
    assert stdout.count('--dataset=synthetic_person_search/domain_b') == 3 * 2 * 2
    assert stdout.count('python evaluate.py') == 3 * (2 * 4 + 2)
    # One process can take a share of the seeds.
    share = _run(f'--root={tmp_path / "runs"}', '--dry_run', '--run_seeds=2', '--nospeed')
    assert share.count('--stage=detection') == 2 and '--seed=2' in share
    assert '--seed=0' not in share and 'runtime_table' not in share
    # The estimate follows the schedule flags: 300 detection steps instead of ~711.
    assert '# seed0/detection/single (~7.4 min)' in stdout
    assert '# seed0/reid/aggregated_J3:reid (~4.0 min)' in stdout


def _fabricate(root: pathlib.Path, seeds: int, variants: list[str]) -> None:
    """Evaluate-style JSON files and step markers, aggregated = single + 5 + seed (mAP %)."""
    for seed in range(seeds):
        for mix_index, mix in enumerate(findings_report.MIXES):
            marker = pathlib.Path(step_runner.marker_path(str(root),
                                                          f'seed{seed}/detection/{mix}'))
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({'command': 'x', 'minutes': 10.0 + seed}))
            for variant_index, variant in enumerate(variants):
                for stage in ('features', 'reid'):
                    pathlib.Path(step_runner.marker_path(
                        str(root), f'seed{seed}/reid/{mix}_{variant}:{stage}')).write_text(
                        json.dumps({'command': 'x', 'minutes': 1.0}))
                for evaluation in findings_report.evaluations(DEFAULT, UNSEEN):
                    value = 0.40 + 0.01 * variant_index + mix_index * (0.05 + 0.01 * seed)
                    rows = [{'gallery_size': size, 'mAP': value - 0.1 * (size == -1),
                             'top1': value + 0.1, 'det_ap': 0.9,
                             'mean_recall': 0.8 + 0.1 * mix_index}
                            for size in (50, 100, -1)]
                    path = root / findings_report.eval_output(f'seed{seed}', f'{mix}_{variant}',
                                                              evaluation)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(json.dumps({'dataset': evaluation.dataset, 'results': rows}))
    speed = root / findings_report.SPEED_JSON
    speed.parent.mkdir(parents=True)
    speed.write_text(json.dumps({'rows': [
        {'model': model, 'batch': 1, 'people': 5, 'precision': 'float32', 'ms_per_image': ms}
        for model, ms in (('J3', 50.0), ('J4', 40.0), ('Disj', 90.0))]}))


def test_report_from_fabricated_results(tmp_path):
    pytest.importorskip('matplotlib')
    root, results = tmp_path / 'runs', tmp_path / 'page' / 'RESULTS.md'
    _fabricate(root, seeds=3, variants=['J3', 'J4'])
    text = findings_report.write_report(
        str(results), str(root), seeds=3, variants=['J3', 'J4'], default=DEFAULT, unseen=UNSEEN,
        gallery=100, invocation='python experiments/cpu_findings.py', commands=['cmd'],
        quick=False, estimate_minutes=60.0)
    assert results.read_text() == text
    assert '48/48 evaluations finished' in text
    # J3: single 40.0 every seed, aggregated 45, 46, 47 -> 46.0 ± 1.0, paired delta +6.0 ± 1.0.
    assert '| J3 | predicted | 40.0 ± 0.0 | 46.0 ± 1.0 | +6.0 ± 1.0 | 3/3 |' in text
    assert '| 90.0 ± 0.0 / 90.0 ± 0.0 | 80.0 ± 0.0 / 90.0 ± 0.0 |' in text   # det AP, recall
    assert '| J4 | 47.0 ± 1.0 | 57.0 ± 1.0 | 46.0, 47.0, 48.0 |' in text   # finding 1 row
    assert '| Disj (speed only) |' in text and 'ms/image b1/5p' in text
    for name in ('sharing_depth', 'aggregation', 'aggregation_gt', 'cross_domain',
                 'cross_domain_gt', 'speed'):
        assert (results.parent / f'results_{name}.png').stat().st_size > 1000
        assert f'(results_{name}.png)' in text


def test_report_with_one_pair_variant_and_no_gt_boxes(tmp_path):
    pytest.importorskip('matplotlib')
    root, results = tmp_path / 'runs', tmp_path / 'RESULTS.md'
    _fabricate(root, seeds=3, variants=['J3', 'J4'])   # also fabricates what this plan skips
    text = findings_report.write_report(
        str(results), str(root), seeds=3, variants=['J3', 'J4'], pair_variants=['J4'],
        gt_boxes='none', extra_flags='--epochs=2 --steps_per_epoch=150', default=DEFAULT,
        discussion='## Reading\n\nJ4 gains from aggregation.\n',
        unseen=UNSEEN, gallery=100, invocation='x', commands=[], quick=False,
        estimate_minutes=1.0)
    # Expected: aggregated J3 default; aggregated J4 default + unseen; single J4 default + unseen.
    assert '15/15 evaluations finished' in text
    assert '| J4 | predicted | 41.0 ± 0.0 | 47.0 ± 1.0 | +6.0 ± 1.0 | 3/3 |' in text
    assert '| J3 | predicted |' not in text and '| J4 | GT |' not in text
    assert 'same number of steps' in text and '`--epochs=2 --steps_per_epoch=150`' in text
    assert text.index('## Reading\n\nJ4 gains') < text.index('## 1. Sharing depth')
    assert not (tmp_path / 'results_aggregation_gt.png').exists()
    assert not (tmp_path / 'results_cross_domain_gt.png').exists()
    assert (tmp_path / 'results_cross_domain.png').exists()


def test_report_of_an_unfinished_run_marks_what_is_missing(tmp_path):
    text = findings_report.write_report(
        str(tmp_path / 'RESULTS.md'), str(tmp_path / 'empty'), seeds=3, variants=['J2'],
        default=DEFAULT, unseen=UNSEEN, gallery=100, invocation='x', commands=[], quick=False,
        estimate_minutes=1.0)
    assert '0/24 evaluations finished' in text and '| J2 | – | – | –, –, – |' in text


@pytest.mark.experiment
def test_quick_run_end_to_end_on_tiny_data(table_root):
    # Tiny stand-ins: the synthetic tiny config for the training domain, the dummy MOT17Det
    # release as the extra detection-only data, the dummy CUHK-SYSU release as the unseen domain.
    # Both detection runs are seeded with the session's one detector (the recipe tests train
    # detection on dataset mixes); pooling, re-ID, every evaluation and the report run for real.
    recipes_root, data_dir, _ = table_root
    root = recipes_root.parent / 'cpu_findings'
    # Predicted boxes only (--gt_boxes=none): the GT-box evaluations are the same command with
    # one more flag, and the report's GT rows are checked on fabricated results above.
    flags = [f'--root={root}', '--quick', '--seeds=1', '--variants=J4', '--nospeed',
             '--gt_boxes=none',
             '--default_dataset=synthetic_person_search/tiny',
             '--extra_detection_dataset=mot17det', '--unseen_dataset=cuhk_sysu',
             f'--data_dir={data_dir}', f'--manual_dir={experiments_fixtures.MANUAL_DIR}']
    plan = _run(*flags, '--dry_run').splitlines()
    for mix in ('single', 'aggregated'):
        key = f'seed0/detection/{mix}'
        command = plan[next(i for i, line in enumerate(plan) if line.startswith(f'# {key} ')) + 1]
        experiments_fixtures.seed_step(root, key, command, recipes_root / 'detection' / 'all4')
    stdout = _run(*flags, timeout=1200)
    assert 'wrote' in stdout and stdout.count('[done]') == 2
    text = (root / 'RESULTS.md').read_text()
    assert '4/4 evaluations finished' in text and '`--quick` run' in text
    assert (root / 'results_cross_domain.png').exists()
    assert '[run]' not in _run(*flags)   # a rerun resumes: every step is done
