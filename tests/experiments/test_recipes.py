"""Every Table 1 recipe's commands parse with the scripts' own absl flags and name datasets that
exist as TFDS builders; the recipe table covers Table 1a/c/d and shares runs as intended."""

import json
import pathlib
import subprocess
import sys

import pytest

import recipes as recipes_lib
import step_runner

ROOT = pathlib.Path(__file__).resolve().parents[2]
SETTINGS = step_runner.CommandSettings(root='/runs/table1', data_dir='/data/tfds',
                                       manual_dir='cuhk_sysu=/data/cuhk,prw=/data/prw')

# Loads a script as a module (its flags get defined, main does not run) and parses each command
# line of stdin (a JSON list of argvs) with absl; prints the errors as JSON.
PARSE_PROGRAM = '''
import importlib.util, json, sys
from absl import flags
spec = importlib.util.spec_from_file_location('script_under_test', sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
errors = []
for argv in json.load(sys.stdin):
    flags.FLAGS.unparse_flags()
    try:
        flags.FLAGS(argv)
    except flags.Error as error:
        errors.append(f'{" ".join(argv)}: {error}')
print(json.dumps(errors))
'''


def _commands_by_script() -> dict[str, list[list[str]]]:
    by_script = {}
    for step in recipes_lib.ordered_steps(recipes_lib.all_recipes()):
        argv = step_runner.command(step.script, step.args, SETTINGS)
        by_script.setdefault(step.script, []).append([argv[1]] + argv[2:])
    return by_script


def test_every_command_parses_with_its_script_flags():
    by_script = _commands_by_script()
    assert set(by_script) == {step_runner.TRAIN, step_runner.EVALUATE, step_runner.PREPARE}
    processes = {script: subprocess.Popen(
        [sys.executable, '-c', PARSE_PROGRAM, str(ROOT / script)], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        for script in by_script}   # in parallel: each imports TensorFlow
    for script, process in processes.items():
        stdout, stderr = process.communicate(json.dumps(by_script[script]), timeout=300)
        assert process.returncode == 0, stderr[-3000:]
        assert json.loads(stdout.strip().splitlines()[-1]) == [], script


def _flag_values(argv: list[str], name: str) -> list[str]:
    return [arg.split('=', 1)[1] for arg in argv if arg.startswith(f'--{name}=')]


def test_every_dataset_is_a_registered_tfds_builder():
    import tensorflow_datasets as tfds

    import tfds_builders  # noqa: F401

    names = set()
    for step in recipes_lib.ordered_steps(recipes_lib.all_recipes()):
        argv = list(step.args)
        for spec in _flag_values(argv, 'datasets') + _flag_values(argv, 'validation'):
            names |= {entry.split(':')[0] for entry in spec.split(',')}
        for flag in ('reid.datasets', 'dataset'):
            names |= {n for value in _flag_values(argv, flag) for n in value.split(',')}
    assert names == {'cuhk_sysu', 'prw', 'mot17det', 'wider_pedestrian'}
    for name in names:
        tfds.builder(name, data_dir='/nonexistent')   # raises for an unknown name or config


def test_table_1_is_covered_and_runs_are_shared():
    recipes = recipes_lib.all_recipes()
    by_part = {part: [r.id for r in recipes if r.part == part] for part in ('1a', '1c', '1d')}
    assert len(by_part['1a']) == 8 and len(by_part['1c']) == 6 and len(by_part['1d']) == 6
    assert all(r.evaluations and all(e.paper for e in r.evaluations) for r in recipes)
    steps = recipes_lib.ordered_steps(recipes)
    # One detection run per mix (all4, mwp, prw, cuhk) for all variants and Disj.
    assert sorted(s.key for s in steps if s.key.startswith('detection/')) == [
        'detection/all4', 'detection/cuhk', 'detection/mwp', 'detection/prw']
    # Table 1d's aggregated J3 is Table 1a's CUHK-SYSU J3: the same stage-2 run and evaluation.
    by_id = {r.id: r for r in recipes}
    assert set(by_id['1a_J3_cuhk'].steps) < set(by_id['1d_J3'].steps)
    assert [e.boxes for e in by_id['1d_J3c'].evaluations] == ['predicted', 'GT']
    # Cross-dataset rows build CUHK-SYSU for evaluation; its numbers are the paper's Table 1c.
    assert any(s.key == 'prepare/cuhk_sysu' for s in by_id['1c_J4mwp'].steps)
    assert by_id['1c_J3mwp'].evaluations[0].paper == {'100': (54.6, 56.1), '4000': (28.1, 29.7)}
    assert by_id['1a_J2_prw'].evaluations[0].paper == {'PRW': (25.2, 47.0)}


def test_select():
    assert [r.id for r in recipes_lib.select('table=1c')][:2] == ['1c_J2p', '1c_J2mwp']
    assert [r.id for r in recipes_lib.select('1d_J4,1a_J3_prw')] == ['1a_J3_prw', '1d_J4']
    assert len(recipes_lib.select('all')) == 20
    with pytest.raises(ValueError, match='unknown recipe'):
        recipes_lib.select('1a_J5')
    with pytest.raises(ValueError, match='unknown table part'):
        recipes_lib.select('table=1b')


def test_dry_run_prints_each_shared_step_once():
    result = subprocess.run(
        [sys.executable, str(ROOT / 'experiments' / 'run_recipes.py'), '--recipes=table=1d',
         '--root=/tmp/never_written', '--dry_run'], capture_output=True, text=True, cwd=ROOT,
        timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count('--stage=detection') == 2        # cuhk and all4
    assert result.stdout.count('--stage=features') == 6
    assert result.stdout.count('--use_gt_boxes') == 6
    assert not pathlib.Path('/tmp/never_written').exists()


def test_prw_evaluations_sweep_boxes_per_image_and_report_the_best(tmp_path):
    """Table 1a's PRW rows: the paper's best over a number of boxes per image (no score threshold
    besides the cap); the results table reads the sweep's best row, not the last one."""
    import results_table

    by_id = {r.id: r for r in recipes_lib.all_recipes()}
    for model in ('Disj', 'J2', 'J3', 'J4'):
        step, = [s for s in by_id[f'1a_{model}_prw'].steps if s.script == 'evaluate.py']
        assert _flag_values(list(step.args), 'max_detections_per_image') == ['1,3,5,10']
        assert _flag_values(list(step.args), 'det_thresh') == ['0.0']
    cuhk_eval, = [s for s in by_id['1a_J3_cuhk'].steps if s.script == 'evaluate.py']
    assert not _flag_values(list(cuhk_eval.args), 'max_detections_per_image')
    rows = [{'gallery': 'standard', 'max_detections_per_image': n, 'mAP': m, 'top1': 0.5}
            for n, m in ((3, 0.2), (5, 0.25), (10, 0.1))]
    path = tmp_path / 'sweep.json'
    path.write_text(json.dumps({'dataset': 'prw', 'results': rows, 'best': [rows[1]]}))
    assert results_table.read_metrics(str(path))['PRW']['max_detections_per_image'] == 5


def test_table_1c_also_evaluates_on_prw_with_the_papers_detection_ap():
    """Each 1c model is scored on PRW too (intra-dataset), swept like Table 1a's PRW rows, and
    carries the paper's detection AP (§3.2) on both datasets; nothing else does."""
    recipes = recipes_lib.all_recipes()
    by_id = {r.id: r for r in recipes}
    for recipe_id, cross_ap, intra_ap in (('1c_J2p', 30.0, 81.0), ('1c_J4p', 30.0, 81.0),
                                          ('1c_J3mwp', 60.0, 79.0)):
        cuhk, prw = by_id[recipe_id].evaluations
        assert (cuhk.dataset, cuhk.paper_det_ap) == ('cuhk_sysu', cross_ap)
        assert (prw.dataset, prw.boxes, prw.paper_det_ap) == ('prw', 'predicted', intra_ap)
        assert prw.paper == {'PRW': (None, None)}   # the paper gives no 1c search numbers on PRW
        step, = [s for s in by_id[recipe_id].steps if s.key == prw.output.removesuffix('.json')]
        assert step.args[3:] == ('--det_thresh=0.0', '--max_detections_per_image=1,3,5,10')
        assert not any(s.key == 'prepare/prw' for s in by_id[recipe_id].steps)   # trained on it
    assert all(e.paper_det_ap is None for r in recipes if r.part != '1c' for e in r.evaluations)


def test_the_prw_evaluations_add_one_step_per_1c_model_and_share_the_rest():
    """A PRW evaluation per 1c model (its search numbers are the model's; the detection AP of a
    mix comes with each of its three); detection, stage 2 and preparation stay shared."""
    steps = recipes_lib.ordered_steps(recipes_lib.select('table=1c'))
    keys = [s.key for s in steps]
    assert len(keys) == len(set(keys)) == 2 + 6 * 2 + 1 + 6 * 2
    assert sorted(k for k in keys if k.endswith('__prw')) == sorted(
        f'eval/{mix}_{v}_prw__prw' for mix in ('prw', 'mwp') for v in recipes_lib.VARIANTS)
    every = recipes_lib.ordered_steps(recipes_lib.all_recipes())
    assert sum(s.script == 'evaluate.py' for s in every) == 23 + 6
    assert sum(s.key.endswith('__prw') for s in every) == 4 + 6   # 1a's PRW rows + 1c's


def test_results_table_shows_det_ap_beside_the_papers(tmp_path):
    """Hand-written evaluate.py files: the 1c lines show our detection AP (PRW: the sweep's best
    row's, which every row shares) beside the paper's; lines without a paper AP leave it empty."""
    import results_table
    from experiments_fixtures import table_rows

    (tmp_path / 'eval').mkdir()
    cuhk_rows = [{'gallery_size': size, 'mAP': 0.5, 'top1': 0.6, 'det_ap': 0.55}
                 for size in (100, 4000)]
    sweep = [{'gallery': 'standard', 'max_detections_per_image': n, 'mAP': m, 'top1': 0.4,
              'det_ap': 0.785, 'best_of_sweep': n == 5} for n, m in ((3, 0.2), (5, 0.25))]
    files = {'mwp_J3_prw__cuhk_sysu': {'results': cuhk_rows},
             'mwp_J3_prw__prw': {'results': sweep, 'best': [sweep[1]]},
             'all4_J3_prw__prw': {'results': sweep, 'best': [sweep[1]]}}
    for name, content in files.items():
        (tmp_path / 'eval' / f'{name}.json').write_text(json.dumps(content))
    chosen = recipes_lib.select('1a_J3_prw,1c_J3mwp,1c_J3p')
    text = results_table.markdown(chosen, str(tmp_path))
    (tmp_path / 'table.md').write_text(text)
    header = text.splitlines()[2]
    assert '| det AP % | paper det AP % |' in header and header.count('|') == 14
    rows = table_rows(tmp_path)
    assert rows['1c_J3mwp', 'predicted', '100'][7:] == [
        '50.0', '54.6', '60.0', '56.1', '55.0', '60.0']
    assert rows['1c_J3mwp', 'predicted', '4000'][11:] == ['55.0', '60.0']
    assert rows['1c_J3mwp', 'predicted', 'PRW'][4:] == [
        'prw', 'predicted', 'PRW', '25.0', '–', '40.0', '–', '78.5', '79.0']
    assert rows['1c_J3p', 'predicted', 'PRW'][11:] == ['–', '81.0']   # not evaluated yet
    assert rows['1c_J3p', 'predicted', '100'][11:] == ['–', '30.0']
    assert rows['1a_J3_prw', 'predicted', 'PRW'][7:] == ['25.0', '22.5', '40.0', '45.1', '78.5', '']


def test_the_coco_checkpoint_reaches_every_detection_step_and_only_those():
    steps = recipes_lib.ordered_steps(recipes_lib.select('all'))
    assert recipes_lib.with_init_checkpoint(steps, None) == steps
    started = recipes_lib.with_init_checkpoint(steps, 'coco/ckpt-1')
    flag = f'--init_checkpoint={pathlib.Path("coco/ckpt-1").resolve()}'
    for before, after in zip(steps, started):
        detection = '--stage=detection' in before.args
        assert after.args == before.args + ((flag,) if detection else ())
    assert sum(flag in step.args for step in started) >= 4   # the four detection mixes at least
