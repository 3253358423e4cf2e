"""Backbone pretraining: a tiny run writes weights the detector starts from; an interrupted run
resumes at its last checkpoint; the attribute loss ignores crops without a person."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from ps_tf import config as config_lib
from ps_tf.models.backbone import resnet50
from ps_tf.models.retinanet import build_detector
from ps_tf.training import pretraining

TINY = dataclasses.replace(
    config_lib.PRESETS['synthetic'].pretrain, dataset='synthetic_attributes/tiny',
    batch_size=8, steps=4, warmup_steps=1,
    checkpoint_every=2, log_every=1, mixed_precision='float32',
    stage_heads=False)   # resume and weights here; the stage heads have their own tests


def test_masked_cross_entropy_ignores_crops_without_a_person():
    logits = tf.constant([[4.0, 0.0], [0.0, 4.0], [9.0, -9.0]])
    with_background = pretraining.masked_cross_entropy(tf.constant([0, 0, -1]), logits)
    without = pretraining.masked_cross_entropy(tf.constant([0, 0]), logits[:2])
    np.testing.assert_allclose(with_background.numpy(), without.numpy(), rtol=1e-6)
    assert pretraining.masked_cross_entropy(tf.constant([-1]), logits[:1]).numpy() == 0.0


@pytest.mark.slow
def test_interrupted_pretraining_resumes_and_the_detector_starts_from_its_weights(
        tmp_path, monkeypatch):
    class Killed(Exception):
        pass

    original = pretraining._Progress.on_train_batch_end

    def die_at_step_3(self, batch, logs=None):
        original(self, batch, logs)
        if int(self.model.optimizer.iterations.numpy()) == 3:
            raise Killed()

    monkeypatch.setattr(pretraining._Progress, 'on_train_batch_end', die_at_step_3)
    with pytest.raises(Killed):
        pretraining.pretrain_backbone(TINY, str(tmp_path))
    path = pretraining.weights_path(str(tmp_path))
    assert not tf.io.gfile.exists(path)
    monkeypatch.setattr(pretraining._Progress, 'on_train_batch_end', original)
    results = pretraining.pretrain_backbone(TINY, str(tmp_path))
    assert results['resumed_at_step'] == 2     # the checkpoint of step 2, not step 0
    assert 0 <= results['upper_accuracy'] <= 1

    # The weights file is what `--weights` takes: the detector's trunk starts from it.
    detector = build_detector('J3', weights=path, head_batch_norm=True)
    detector(tf.zeros([1, 64, 64, 3]), training=False)
    trunk_conv1 = [v for v in detector.trunk.variables if 'conv1_conv/kernel' in v.name][0]
    fresh = resnet50('none').get_layer('conv1_conv').kernel.numpy()
    assert not np.allclose(trunk_conv1.numpy(), fresh)
    # A finished run is not trained again.
    assert pretraining.pretrain_backbone(TINY, str(tmp_path)) == results


def test_stage_heads_supervise_the_shareable_stages_with_the_same_labels():
    model, _ = pretraining.build_classifier('float32', stage_heads=True)
    expected = {pretraining.stage_head_name(k, name)
                for k in pretraining.SHAREABLE_STAGES for name in pretraining.ATTRIBUTE_CLASSES}
    assert expected <= set(model.output_names)
    assert set(pretraining.HEADS) <= set(model.output_names)

    crops = tf.random.uniform([2, 64, 32, 3], 0, 255)
    labels = {name: tf.constant([1, -1]) for name in pretraining.HEADS}
    dataset = pretraining.with_stage_labels(
        tf.data.Dataset.from_tensors((crops, labels)), model.output_names)
    _, all_labels = next(iter(dataset))
    assert set(all_labels) == set(model.output_names)
    np.testing.assert_array_equal(all_labels['C3_accessory_colour'], labels['accessory_colour'])

    # A C3 head's loss reaches C1-C3 and nothing after them: it supervises J3's shared trunk.
    with tf.GradientTape() as tape:
        loss = pretraining.masked_cross_entropy(all_labels['C3_upper'],
                                                model(crops, training=True)['C3_upper'])
    variables = {v.name: v for v in model.trainable_variables}
    gradients = dict(zip(variables, tape.gradient(loss, list(variables.values()))))
    conv1 = [name for name in variables if 'conv1_conv/kernel' in name][0]
    conv4 = [name for name in variables if 'conv4_block1_1_conv/kernel' in name][0]
    assert gradients[conv1] is not None and np.abs(gradients[conv1].numpy()).max() > 0
    assert gradients[conv4] is None


def test_without_stage_heads_only_the_final_heads_exist():
    model, _ = pretraining.build_classifier('float32')
    assert set(model.output_names) == set(pretraining.HEADS)
