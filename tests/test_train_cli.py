"""The main job in miniature: `train.py` (stage `all`) on `synthetic_person_search/tiny`, then
`evaluate.py --checkpoint` on the model it wrote (detections, ground-truth boxes, predictions
file); and how `train.py` names its settings: `--<section>.<field>` flags, a settings file, the
resolved `settings.json`, former names refused with the new ones."""

import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ps_tf.evaluation import predictions as predictions_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATASET = 'synthetic_person_search/tiny'

# One switch, the `tiny` preset: a few pretraining steps, 64-px images, a few detection steps,
# 2 re-ID steps, float32, every dataset setting on the tiny datasets; J4, the cheapest re-ID
# branch, from a settings file (--config_file).
TINY_FLAGS = ['--preset=tiny']
SETTINGS = {'detection': {'variant': 'J4'}, 'reid': {'embedding_dim': 8}}


def _run(script, *flags, timeout=600):
    return subprocess.run([sys.executable, str(ROOT / script), *flags], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny_synthetic_data_dir):
    model_dir = tmp_path_factory.mktemp('main_job')
    settings = tmp_path_factory.mktemp('settings') / 'j4.json'
    settings.write_text(json.dumps(SETTINGS))
    flags = [f'--model_dir={model_dir}', f'--data_dir={tiny_synthetic_data_dir}',
             f'--config_file={settings}', *TINY_FLAGS]
    result = _run('train.py', *flags)
    assert result.returncode == 0, result.stderr[-4000:]
    return model_dir, result.stdout, flags


@pytest.mark.slow
def test_stage_all_runs_every_stage_and_reports_search_metrics(trained):
    model_dir, stdout, _ = trained
    for marker in ('== 1/4 pretrain', '== 2/4 detection', '== 3/4 features', '== 4/4 reid',
                   f'person search on {DATASET}: mAP'):
        assert marker in stdout
    # The preset's recipe: the detector starts from this run's own pretrained ResNet-50 and
    # keeps the shared blocks as pretrained.
    detection = json.loads((model_dir / 'config.json').read_text())
    assert detection['weights'] == str(model_dir / 'pretrain' / 'resnet50.h5')
    assert detection['freeze_shared_trunk'] and pathlib.Path(detection['weights']).exists()
    # ... and stage 2's replicated stages start from that pretraining, not from the detector.
    reid = json.loads((model_dir / 'reid' / 'config.json').read_text())
    assert reid['initial_weights'] == detection['weights']
    # The pretraining supervised the shareable stages too (the preset's `stage_heads`).
    pretrained = json.loads((model_dir / 'pretrain' / 'results.json').read_text())
    assert {'C3_upper_accuracy', 'C4_pattern_accuracy', 'upper_accuracy'} <= set(pretrained)
    results = json.loads((model_dir / 'results.json').read_text())
    for key in ('mAP', 'top1', 'det_ap', 'detection_det_ap', 'total_minutes'):
        assert 0.0 <= results[key] <= (1.0 if key != 'total_minutes' else 60.0), key
    assert (model_dir / 'config.json').exists() and (model_dir / 'reid' / 'config.json').exists()
    # The settings file's variant reached stage 1 and the pooling; settings.json records all.
    assert json.loads((model_dir / 'pooled' / 'manifest.json').read_text())['variant'] == 'J4'
    assert json.loads((model_dir / 'config.json').read_text())['variant'] == 'J4'
    settings = json.loads((model_dir / 'settings.json').read_text())
    assert settings['_preset'] == 'tiny' and settings['detection']['variant'] == 'J4'
    assert settings['reid']['datasets'] == DATASET and settings['joint']['steps'] == 2
    assert settings['reid']['embedding_dim'] == 8 and settings['pretrain']['steps'] == 4


@pytest.mark.parametrize('use_gt_boxes', [False, True])
def test_evaluate_checkpoint(trained, tiny_synthetic_data_dir, tmp_path, use_gt_boxes):
    model_dir, _, _ = trained
    predictions_path, output = tmp_path / 'predictions.npz', tmp_path / 'metrics.json'
    flags = [f'--dataset={DATASET}', f'--data_dir={tiny_synthetic_data_dir}',
             f'--checkpoint={model_dir}', f'--write_predictions={predictions_path}',
             f'--output_json={output}'] + (['--use_gt_boxes'] if use_gt_boxes else [])
    result = _run('evaluate.py', *flags)
    assert result.returncode == 0, result.stderr[-4000:]
    rows = json.loads(output.read_text())['results']
    assert rows and all(row['use_gt_boxes'] == use_gt_boxes for row in rows)
    predictions = predictions_lib.read_predictions(str(predictions_path))
    assert predictions.query_embeddings.shape == (3, 8)
    np.testing.assert_allclose(np.linalg.norm(predictions.query_embeddings, axis=1), 1.0,
                               rtol=1e-5)
    if use_gt_boxes:
        # Every ground-truth box embedded with score 1: detection recall is complete.
        assert np.all(predictions.det_scores == 1.0)
        assert all(row['det_recall'] == 1.0 for row in rows)
    # The predictions file scores the same when evaluated on its own.
    again = _run('evaluate.py', f'--dataset={DATASET}', f'--data_dir={tiny_synthetic_data_dir}',
                 f'--predictions={predictions_path}', f'--output_json={tmp_path / "again.json"}')
    assert again.returncode == 0, again.stderr[-4000:]
    again_rows = json.loads((tmp_path / 'again.json').read_text())['results']
    assert [r['mAP'] for r in again_rows] == [r['mAP'] for r in rows]


def test_evaluate_checkpoint_errors_name_the_path(tmp_path, tiny_synthetic_data_dir):
    result = _run('evaluate.py', f'--dataset={DATASET}', f'--data_dir={tiny_synthetic_data_dir}',
                  f'--checkpoint={tmp_path}')
    assert result.returncode != 0
    assert str(tmp_path) in result.stderr and 'train.py' in result.stderr


# In CI's experiment phase with the other multi-device checks: 53-111 s of the suite's 10 minutes.
# Stage 2's replica gradients are checked in the suite (tests/training/test_multi_worker.py).
@pytest.mark.experiment
def test_stage2_trains_on_two_logical_cpu_devices(trained, tiny_synthetic_data_dir, tmp_path):
    # Stage 2 alone, from the trained run's stage 1 and pooled features, under MirroredStrategy:
    # each replica gets half of every P x K batch and mines triplets over all of it.
    model_dir, _, _ = trained
    shutil.copytree(model_dir / 'pooled', tmp_path / 'pooled')
    result = _run('train.py', '--stage=reid', f'--model_dir={tmp_path}',
                  f'--detection_model_dir={model_dir}', f'--data_dir={tiny_synthetic_data_dir}',
                  '--num_cpu_devices=2', *TINY_FLAGS, '--reid.identities_per_batch=4',
                  # the distribution is the subject: skip building a second ResNet-50 to copy
                  '--reid.initial_weights=detector')
    assert result.returncode == 0, result.stderr[-4000:]
    saved = json.loads((tmp_path / 'reid' / 'config.json').read_text())
    assert saved['num_replicas'] == 2 and saved['total_steps'] == 2
    final = json.loads(result.stdout.strip().splitlines()[-1])
    assert final['stage'] == 'reid' and 0.0 <= final['mAP'] <= 1.0


def test_a_moved_run_still_loads(trained, tiny_synthetic_data_dir, tmp_path):
    # The stage-2 config records the stage-1 checkpoint's path as given at training time; a run
    # directory that was moved (or trained with a relative --model_dir from elsewhere) loads the
    # checkpoint beside its reid/ directory.
    model_dir, _, _ = trained
    moved = tmp_path / 'moved'
    shutil.copytree(model_dir, moved, ignore=shutil.ignore_patterns('pooled'))
    shutil.rmtree(model_dir / 'checkpoints')   # the recorded path no longer exists
    try:
        result = _run('evaluate.py', f'--dataset={DATASET}',
                      f'--data_dir={tiny_synthetic_data_dir}', f'--checkpoint={moved}')
        assert result.returncode == 0, result.stderr[-4000:]
        assert 'mAP' in result.stdout
    finally:
        shutil.copytree(moved / 'checkpoints', model_dir / 'checkpoints')


def test_rerun_resumes_without_training_again_and_can_delete_the_pooled_features(trained):
    """Last in this module: it deletes the fixture's pooled features, which the tests above
    read (pytest runs a module's tests in file order, and conftest.py keeps a module with a
    module-scoped fixture on one worker)."""
    model_dir, _, flags = trained
    result = _run('train.py', *flags, '--delete_pooled_after_reid')
    assert result.returncode == 0, result.stderr[-4000:]
    assert 'stage 1 (detection' not in result.stdout and 'stage 2 (re-ID' not in result.stdout
    before = json.loads((model_dir / 'results.json').read_text())
    assert f'mAP {before["mAP"]:.4f}' in result.stdout   # same model, same metrics
    assert 'deleted the pooled features' in result.stdout and not (model_dir / 'pooled').exists()
    deleted = json.loads((model_dir / 'pooled_deleted.json').read_text())
    assert deleted['bytes'] > 0 and deleted['reid_metrics']['mAP'] == before['mAP']
    assert deleted['manifest']['variant'] == 'J4' and list(deleted['manifest']['datasets']) == [
        DATASET]

    # Once deleted, a rerun neither pools again nor needs the features: it reports the metrics.
    again = _run('train.py', *flags)
    assert again.returncode == 0, again.stderr[-4000:]
    assert 'nothing to features' in again.stdout and 'nothing to reid' in again.stdout
    assert f'mAP {before["mAP"]:.4f}' in again.stdout and not (model_dir / 'pooled').exists()


def test_former_flags_are_usage_errors_naming_the_new_flag(tmp_path):
    result = _run('train.py', f'--model_dir={tmp_path}', '--reid_seed=1', '--joint_steps=2',
                  '--pretrain_steps=4', '--semi_hard_epochs=3', '--margin=0.3', '--noreid_flip',
                  timeout=300)
    assert result.returncode != 0
    for message in ('--reid_seed is now --reid.seed', '--joint_steps is now --joint.steps',
                    '--pretrain_steps is now --pretrain.steps',
                    '--semi_hard_epochs is now --reid.semi_hard_epochs',
                    '--margin is now --reid.margin', '--noreid_flip is now --noreid.flip'):
        assert message in result.stderr, result.stderr[-3000:]
    assert 'Unknown command line flag' not in result.stderr
    assert not (tmp_path / 'settings.json').exists()


def test_stage2_from_a_missing_pretraining_is_a_usage_error_naming_the_file(tmp_path):
    result = _run('train.py', '--preset=tiny', '--stage=reid', f'--model_dir={tmp_path}',
                  '--reid.initial_weights=pretrained', timeout=300)
    assert result.returncode != 0
    assert f'{tmp_path}/pretrain/resnet50.h5, which does not exist' in result.stderr, \
        result.stderr[-3000:]
    old = _run('train.py', f'--model_dir={tmp_path}', '--reid.disjoint_weights=none',
               timeout=300)
    assert '--reid.disjoint_weights is now --reid.initial_weights' in old.stderr, \
        old.stderr[-3000:]


def test_a_settings_file_with_a_former_name_is_a_usage_error_naming_it(tmp_path):
    path = tmp_path / 'old.json'
    path.write_text(json.dumps({'reid': {'reid_seed': 1}}))
    result = _run('train.py', f'--model_dir={tmp_path / "run"}', f'--config_file={path}',
                  timeout=300)
    assert result.returncode != 0
    assert f'settings file {path}: reid.reid_seed is now reid.seed' in result.stderr, \
        result.stderr[-3000:]


def test_qualified_flags_reach_the_settings_and_settings_json_reads_back(tmp_path):
    """Every command writes its resolved settings before it runs a stage (here `joint`, which
    then fails: there is no stage 2 to fine-tune)."""
    first, second = tmp_path / 'first', tmp_path / 'second'
    result = _run('train.py', '--stage=joint', '--preset=tiny', f'--model_dir={first}',
                  '--reid.seed=7', '--reid.margin=0.25', '--reid.validation=', '--noreid.flip',
                  '--joint.steps=3', '--joint.reid_weight=0.5', '--pretrain.steps=5',
                  '--seed=11', '--epochs=2', timeout=300)
    assert result.returncode != 0 and 'holds no finished stage 2' in result.stderr, \
        result.stderr[-3000:]
    settings = json.loads((first / 'settings.json').read_text())
    assert settings['_preset'] == 'tiny'
    assert (settings['reid']['seed'], settings['reid']['margin'], settings['reid']['validation'],
            settings['reid']['flip']) == (7, 0.25, '', False)
    assert (settings['joint']['steps'], settings['joint']['reid_weight']) == (3, 0.5)
    assert settings['pretrain']['steps'] == 5
    assert (settings['detection']['seed'], settings['detection']['epochs']) == (11, 2.0)
    assert settings['joint']['seed'] == 0 and settings['reid']['embedding_dim'] == 8   # preset

    # Read back under another preset, settings.json gives the same settings.
    result = _run('train.py', '--stage=joint', '--preset=paper', f'--model_dir={second}',
                  f'--config_file={first / "settings.json"}', timeout=300)
    assert 'holds no finished stage 2' in result.stderr, result.stderr[-3000:]
    again = json.loads((second / 'settings.json').read_text())
    assert again == {**settings, '_preset': 'paper'}
