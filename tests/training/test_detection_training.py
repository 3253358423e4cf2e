"""Stage-1 training: a few steps on the tiny synthetic data, resume, non-finite loss, and the
distributed path on two logical CPU devices."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from ps_tf import config as config_lib
from ps_tf.models import factory
from ps_tf.training import detection

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tiny_config(**overrides) -> config_lib.DetectionConfig:
    settings = dict(datasets='synthetic_person_search/tiny:1',
                    validation='synthetic_person_search/tiny:gallery', image_size=64,
                    batch_size=2, steps_per_epoch=1, epochs=2, warmup_epochs=1, log_every=1,
                    checkpoint_every=1, eval_every=0, mixed_precision='float32',
                    weights='none', freeze_shared_trunk=False)
    return dataclasses.replace(config_lib.PRESETS['synthetic'].detection,
                               **{**settings, **overrides})


@pytest.mark.slow
def test_trains_saves_config_and_resumes_where_it_stopped(tiny_synthetic_data_dir, tmp_path,
                                                          capsys):
    model_dir = str(tmp_path / 'run')
    metrics = detection.train_detector(_tiny_config(), model_dir, tiny_synthetic_data_dir)
    assert set(metrics) == {'det_ap', 'det_recall'}
    assert 0.0 <= metrics['det_ap'] <= 1.0
    saved = json.load(open(os.path.join(model_dir, 'config.json')))
    assert saved['image_size'] == 64 and saved['total_steps'] == 2
    assert tf.train.latest_checkpoint(os.path.join(model_dir, 'checkpoints')).endswith('ckpt-2')
    output = capsys.readouterr().out
    assert 'step 1/2' in output and 'step 2/2' in output and 'detection AP' in output

    # The same run, made longer, continues from step 2 instead of starting over.
    trainer = detection.DetectionTrainer(_tiny_config(epochs=3, validation=''), model_dir,
                                         tiny_synthetic_data_dir)
    trainer.train()
    output = capsys.readouterr().out
    assert 'from step 2' in output and 'step 3/3' in output and 'step 1/3' not in output
    assert trainer.step == 3
    events = os.listdir(os.path.join(model_dir, 'train'))
    assert any(name.startswith('events.out.tfevents') for name in events)


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(
        tiny_synthetic_data_dir, tmp_path, monkeypatch):
    model_dir = str(tmp_path / 'run')
    real_loss = detection.detection_loss
    runs = {}

    def loss_exploding_after_step_1(*args, **kwargs):
        losses = real_loss(*args, **kwargs)
        exploded = runs['trainer'].optimizer.iterations >= 1
        total = tf.where(exploded, float('nan'), losses['total_loss'])
        return {**losses, 'total_loss': total}

    monkeypatch.setattr(detection, 'detection_loss', loss_exploding_after_step_1)
    trainer = runs['trainer'] = detection.DetectionTrainer(
        _tiny_config(epochs=3, validation=''), model_dir, tiny_synthetic_data_dir)
    with pytest.raises(detection.NonFiniteLossError, match='non-finite loss at step 2') as error:
        trainer.train()
    good = tf.train.latest_checkpoint(os.path.join(model_dir, 'checkpoints'))
    assert good.endswith('ckpt-1') and good in str(error.value)
    # The failed step applied no NaN to the weights.
    assert all(np.all(np.isfinite(v.numpy())) for v in trainer.model.trainable_variables)


class OneLayer(tf.keras.Model):
    """Stands in for the detector where only the loop around it is tested (a detector's
    checkpoint is 80 MB)."""

    def __init__(self):
        super().__init__()
        self.dense = tf.keras.layers.Dense(1)

    def call(self, images, training=False):
        return self.dense(tf.reduce_mean(images, axis=[1, 2]))

    def detect(self, images):
        return {}


def _counting_step(trainer):
    def step(iterator):
        trainer.optimizer.iterations.assign_add(1)
        return {'total_loss': 1.0, 'class_loss': 0.5, 'box_loss': 0.5, 'weight_decay': 0.0,
                'num_positives': 1.0, 'finite': 1.0}
    return step


def test_the_dataset_mix_and_the_flip_setting_reach_the_training_data(
        tiny_synthetic_data_dir, tmp_path, monkeypatch):
    tiny = 'synthetic_person_search/tiny'
    images = detection.datasets_lib.get_builder(tiny, tiny_synthetic_data_dir).info.splits[
        'train'].num_examples
    by_size = detection.training_mix(_tiny_config(datasets=f'{tiny}:2', dataset_mixing='size'),
                                     tiny_synthetic_data_dir)
    assert [tuple(entry) for entry in by_size] == [(tiny, 2.0 * images)] and images > 1
    as_given = detection.training_mix(_tiny_config(datasets=f'{tiny}:2'), tiny_synthetic_data_dir)
    assert [tuple(entry) for entry in as_given] == [(tiny, 2.0)]
    with pytest.raises(ValueError, match="dataset_mixing must be one of"):
        detection.training_mix(_tiny_config(dataset_mixing='uniform'), tiny_synthetic_data_dir)

    calls = []
    monkeypatch.setattr(detection, 'build_model', lambda config: OneLayer())
    monkeypatch.setattr(detection.datasets_lib, 'detection_train_dataset',
                        lambda *args, **kwargs: calls.append((args, kwargs))
                        or tf.data.Dataset.from_tensors(0).repeat())
    trainer = detection.DetectionTrainer(
        _tiny_config(datasets=f'{tiny}:2', dataset_mixing='size', flip_prob=0.25, epochs=1,
                     validation=''), str(tmp_path / 'run'), tiny_synthetic_data_dir)
    trainer._train_step_fn = lambda: _counting_step(trainer)
    trainer.train()
    (args, kwargs), = calls
    assert [tuple(entry) for entry in args[0]] == [(tiny, 2.0 * images)]
    assert kwargs['flip_prob'] == 0.25
    assert (config_lib.PRESETS['paper'].detection.flip_prob,
            config_lib.PRESETS['synthetic'].detection.flip_prob) == (0.0, 0.5)


def test_checkpoints_land_on_multiples_of_checkpoint_every(tmp_path, monkeypatch):
    # A one-layer model, no data and a step that only counts: the loop's checkpoint schedule
    # alone is tested.
    monkeypatch.setattr(detection, 'build_model', lambda config: OneLayer())
    monkeypatch.setattr(detection.datasets_lib, 'detection_train_dataset',
                        lambda *args, **kwargs: tf.data.Dataset.from_tensors(0).repeat())
    model_dir = str(tmp_path / 'run')

    def train(epochs: int) -> list[int]:
        trainer = detection.DetectionTrainer(
            _tiny_config(epochs=epochs, checkpoint_every=3, log_every=100, validation=''),
            model_dir)

        trainer._train_step_fn = lambda: _counting_step(trainer)
        trainer.train()
        state = tf.train.get_checkpoint_state(os.path.join(model_dir, 'checkpoints'))
        return [int(path.rsplit('-', 1)[1]) for path in state.all_model_checkpoint_paths]

    assert train(epochs=7) == [3, 6, 7]       # not 1, 4, 7: multiples of 3, then the end
    assert train(epochs=11) == [7, 9, 11]     # resumed at 7: not 8 (the first step after it)


# Two replicas and float16 loss scaling through train.py (about 100 s: float16 has no fast CPU
# kernels): with the two-worker checks, in CI's experiment phase rather than the suite.
@pytest.mark.experiment
def test_two_logical_cpu_devices_train_with_mirrored_strategy_in_float16(
        tiny_synthetic_data_dir, tmp_path):
    model_dir = str(tmp_path / 'run')
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, 'train.py'), '--stage=detection',
         '--preset=synthetic', f'--model_dir={model_dir}',
         f'--data_dir={tiny_synthetic_data_dir}',
         '--datasets=synthetic_person_search/tiny:1',
         '--validation=synthetic_person_search/tiny:gallery', '--image_size=64',
         '--batch_size=2', '--steps_per_epoch=1', '--epochs=2', '--eval_every=0',
         '--mixed_precision=float16', '--weights=none',
         '--num_cpu_devices=2'], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.load(open(os.path.join(model_dir, 'config.json')))
    assert saved['num_replicas'] == 2 and saved['resolved_mixed_precision'] == 'float16'
    # float16 trains with dynamic loss scaling (both steps finite, or the run would have
    # stopped); the scale is part of the checkpoint, so a resumed run keeps it.
    checkpoint = tf.train.latest_checkpoint(os.path.join(model_dir, 'checkpoints'))
    assert any('loss_scale' in name for name, _ in tf.train.list_variables(checkpoint))
    final = json.loads(result.stdout.strip().splitlines()[-1])
    assert final['stage'] == 'detection' and 'det_ap' in final


def test_bfloat16_model_keeps_float32_variables_and_outputs():
    config = _tiny_config(mixed_precision='bfloat16', variant='J4')
    model = factory.build_model(config)
    outputs = model(tf.zeros([1, 64, 64, 3]), training=False)
    assert outputs['class_logits'].dtype == tf.float32
    assert outputs['box_outputs'].dtype == tf.float32
    assert all(v.dtype == tf.float32 for v in model.trainable_variables)
    assert tf.keras.mixed_precision.global_policy().name == 'float32'   # restored after build


@pytest.mark.slow
def test_the_detector_learns_its_loss_falls(tiny_synthetic_data_dir, tmp_path, capsys):
    """The learning check of stage 1: on the tiny training images, 40 steps from scratch bring the
    loss well below where it started. (Detection AP on 64 px images stays at 0 after 40 steps from
    scratch: an AP check needs a longer run than the suite affords.)

    Every step's loss is logged and compared as means over the first 5 and the last 10 steps: a
    single step's loss on 4 images swings by 2x (3.4, 3.7, 2.1, 1.6, 4.3 ...), and a check on
    two logged steps at each end failed once on that noise alone."""
    config = _tiny_config(validation='', batch_size=4, epochs=40, warmup_epochs=2,
                          base_learning_rate=0.01, log_every=1, checkpoint_every=100)
    detection.DetectionTrainer(config, str(tmp_path / 'run'), tiny_synthetic_data_dir).train()
    losses = [float(line.split('loss ')[1].split()[0])
              for line in capsys.readouterr().out.splitlines() if line.startswith('step ')]
    assert len(losses) == 40
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:5]), losses


@pytest.mark.slow
def test_frozen_shared_trunk_keeps_its_weights_and_statistics(tiny_synthetic_data_dir, tmp_path):
    trainer = detection.DetectionTrainer(
        _tiny_config(epochs=2, validation='', variant='J2', freeze_shared_trunk=True),
        str(tmp_path / 'run'), tiny_synthetic_data_dir)
    trunk_before = [v.numpy().copy() for v in trainer.model.trunk.weights]   # incl. BN moments
    rest_before = [v.numpy().copy() for v in trainer.model.rest.trainable_variables]
    trainer.train()
    assert not any(v.ref() in {t.ref() for t in trainer.model.trunk.weights}
                   for v in trainer.model.trainable_variables)
    assert all(np.array_equal(a, v.numpy())
               for a, v in zip(trunk_before, trainer.model.trunk.weights))
    assert any(not np.array_equal(a, v.numpy())
               for a, v in zip(rest_before, trainer.model.rest.trainable_variables))
