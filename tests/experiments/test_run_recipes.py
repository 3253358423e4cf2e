"""Table 1 recipes run end to end on the builders' dummy releases with tiny overrides, and the
collected table holds their numbers beside the paper's.

One detection run (the aggregated "all4" mix) is trained once and shared: Table 1d's J4 (whose
stage-2 run and evaluation are Table 1a's CUHK-SYSU J4), predicted and GT boxes; then Table 1c's
J4m-w-p (evaluated on CUHK-SYSU and on PRW), whose own detection run is seeded with that one
(same command form, other data) so that the test trains a single detector.
"""

import json
import os
import sys

import pytest

import recipes as recipes_lib
import step_runner
from experiments_fixtures import metrics, run_recipes, seed_step, settings, table_rows

pytestmark = pytest.mark.experiment


def test_aggregated_j4_runs_and_the_table_holds_its_numbers(table_root):
    root, _, stdout = table_root
    recipe = recipes_lib.select('1d_J4')[0]
    for step in recipe.steps:
        assert os.path.exists(step_runner.marker_path(str(root), step.key)), step.key
    rows = table_rows(root)
    for evaluation in recipe.evaluations:
        measured = metrics(root, evaluation.output)['100']
        cells = rows['1d_J4', evaluation.boxes, '100']
        assert cells[7] == f'{100 * measured["mAP"]:.1f}'
        assert cells[9] == f'{100 * measured["top1"]:.1f}'
        assert cells[8:11:2] == [f'{v:.1f}' for v in evaluation.paper['100']]
        assert rows['1d_J4', evaluation.boxes, '4000'][7] == '–'   # not in the dummy release
    assert metrics(root, 'eval/all4_J4_cuhk__cuhk_sysu_gt.json')['100']['det_recall'] == 1.0
    assert 'Table 1d' in stdout


def test_shared_steps_are_not_run_again_and_table_1a_reuses_them(table_root):
    root, data_dir, _ = table_root
    result = run_recipes(root, data_dir, '1a_J4_cuhk')
    assert '[run]' not in result.stdout and result.stdout.count('[done]') == 4
    rows = table_rows(root)
    assert rows['1a_J4_cuhk', 'predicted', '100'][7] == rows['1d_J4', 'predicted', '100'][7]


def test_cross_dataset_recipe_evaluates_on_a_dataset_it_never_trained_on(table_root):
    root, data_dir, _ = table_root
    # The m-w-p detection run is seeded with the all4 one (one detector per test session).
    detection = next(s for s in recipes_lib.select('1c_J4mwp')[0].steps
                     if s.key == 'detection/mwp')
    argv = step_runner.command(detection.script, detection.args, settings(root, data_dir))
    seed_step(root, detection.key, step_runner.display(argv), root / 'detection' / 'all4')
    run_recipes(root, data_dir, '1c_J4mwp')
    # Stage 2 has finished, so the recipe deleted the pooled features, recording what they were.
    deleted = json.loads((root / 'reid' / 'mwp_J4_prw' / 'pooled_deleted.json').read_text())
    assert not (root / 'reid' / 'mwp_J4_prw' / 'pooled').exists()
    pooled = deleted['manifest']
    assert list(pooled['datasets']) == ['prw'] and pooled['variant'] == 'J4'
    measured = metrics(root, 'eval/mwp_J4_prw__cuhk_sysu.json')['100']
    rows = table_rows(root)
    assert rows['1c_J4mwp', 'predicted', '100'][7] == f'{100 * measured["mAP"]:.1f}'
    # ... and on PRW (intra-dataset), swept over boxes per image, for the paper's detection AP.
    prw = json.loads((root / 'eval' / 'mwp_J4_prw__prw.json').read_text())
    assert [row['max_detections_per_image'] for row in prw['results']] == [1, 3, 5, 10]
    assert len({row['det_ap'] for row in prw['results']}) == 1   # no cap changes it
    assert rows['1c_J4mwp', 'predicted', 'PRW'][11:] == [f'{100 * prw["best"][0]["det_ap"]:.1f}',
                                                         '79.0']


def test_a_step_done_with_another_command_is_refused(table_root, tmp_path):
    root, _, _ = table_root
    marker = step_runner.marker_path(str(root), 'detection/all4')
    with pytest.raises(ValueError, match='another command'):
        step_runner.run_step('detection/all4', [sys.executable, 'train.py', '--epochs=2'],
                             str(root))
    assert os.path.exists(marker)


def test_disjoint_baseline_trains_on_crops_and_evaluates(table_root):
    root, data_dir, _ = table_root
    run_recipes(root, data_dir, '1a_Disj_cuhk')   # the all4 detection run is reused
    pooled = json.loads((root / 'reid' / 'all4_Disj_cuhk' / 'pooled_deleted.json')
                        .read_text())['manifest']
    assert pooled['variant'] == 'Disj' and pooled['dtype'] == 'uint8'
    assert pooled['pooled_shape'] == [256, 128, 3]
    saved = json.loads((root / 'reid' / 'all4_Disj_cuhk' / 'reid' / 'config.json').read_text())
    assert saved['variant'] == 'Disj' and saved['total_steps'] == 2
    measured = metrics(root, 'eval/all4_Disj_cuhk__cuhk_sysu.json')['100']
    assert table_rows(root)['1a_Disj_cuhk', 'predicted', '100'][7] == \
        f'{100 * measured["mAP"]:.1f}'
