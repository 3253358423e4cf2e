"""Joint fine-tuning: P x K image batches, a few steps with resume on the tiny synthetic data,
where the re-ID gradient goes (the trunk here, nowhere near it in inference and the two-step
training), and loading the fine-tuned model the way evaluate.py does."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from ps_tf import config as config_lib
from ps_tf.data import identity_images
from ps_tf.data.detection_parser import DEFAULT_MAX_OBJECTS
from ps_tf.models import loading
from ps_tf.models import stage2 as stage2_models
from ps_tf.training import joint_finetune
from stage1_fixture import make_stage1_run

DATASET = 'synthetic_person_search/tiny'
IMAGE = 64


@pytest.fixture(scope='module')
def two_step_run(tmp_path_factory):
    """A finished two-step run's directories: stage 1 as `make_stage1_run` writes it, and a
    stage 2 written alike (config.json and an untrained branch's checkpoint at its last step):
    pooling and training a stage 2 would only cost time here."""
    model_dir = str(tmp_path_factory.mktemp('run'))
    checkpoint = make_stage1_run(model_dir, image_size=IMAGE)
    config = dataclasses.replace(config_lib.PRESETS['synthetic'].reid, datasets=DATASET,
                                 embedding_dim=8, mixed_precision='float32')
    branch = stage2_models.build_stage2_model('J4', None, config.embedding_dim, False, 'float32',
                                              initialise=False)
    reid_dir = os.path.join(model_dir, 'reid')
    tf.train.Checkpoint(reid=branch).save(os.path.join(reid_dir, 'checkpoints', 'ckpt'))
    config_lib.save_config(config, reid_dir, variant='J4', image_size=IMAGE,
                           source_checkpoint=checkpoint, total_steps=1)
    return model_dir


@pytest.fixture(scope='module')
def trainer(two_step_run, tiny_synthetic_data_dir):
    """A 2-step joint fine-tuning of the run, not started (its model serves the gradient test
    too: one ResNet-50 fewer to build)."""
    return joint_finetune.JointTrainer(_config(), os.path.join(two_step_run, 'reid'),
                                       os.path.join(two_step_run, 'joint'),
                                       data_dir=tiny_synthetic_data_dir)


@pytest.fixture(scope='module')
def image_index(tiny_synthetic_data_dir):
    return identity_images.index_images([DATASET], 'train', tiny_synthetic_data_dir)


def _config(**overrides) -> config_lib.JointConfig:
    settings = dict(steps=2, identities_per_batch=2, images_per_identity=2,
                    warmup_steps=1, validation='', log_every=1,
                    checkpoint_every=1)
    return dataclasses.replace(config_lib.PRESETS['synthetic'].joint, **{**settings, **overrides})


def test_batches_are_p_identities_times_k_images_showing_them(image_index,
                                                              tiny_synthetic_data_dir):
    # The index reads the records TFDS reads, in its order, with every labelled person.
    examples = list(tfds.as_numpy(tfds.builder(DATASET, data_dir=tiny_synthetic_data_dir)
                                  .as_dataset(split='train', shuffle_files=False)))
    assert image_index.filenames == tuple(e['image/filename'].decode() for e in examples)
    for labels, example in zip(image_index.object_labels, examples):
        objects = example['objects']
        expected = np.where(objects['ignore'] | (objects['person_id'] < 0), -1,
                            objects['person_id'])   # tiny: person ids are 0..3, labels too
        np.testing.assert_array_equal(labels, expected)
    # An identity seen in 3 images is drawn once per epoch with 2 of them, every person of the
    # drawn images comes with its label, and a resumed sequence is the same sequence.
    dataset = identity_images.identity_image_dataset(image_index, 2, 2, IMAGE, seed=3)
    batches = list(dataset.take(3).as_numpy_iterator())
    for images, targets, boxes, labels in batches:
        assert images.shape == (4, IMAGE, IMAGE, 3) and labels.shape == (4, DEFAULT_MAX_OBJECTS)
        assert targets['class_targets'].shape[0] == 4 and boxes.shape == (4, DEFAULT_MAX_OBJECTS, 4)
        for group in (labels[:2], labels[2:]):   # K images per drawn identity
            assert set(group[0][group[0] >= 0]) & set(group[1][group[1] >= 0])
        assert np.all((boxes[..., 2] > boxes[..., 0])[labels >= 0])
    resumed = identity_images.identity_image_dataset(image_index, 2, 2, IMAGE, seed=3,
                                                     start_batch=2)
    first = next(resumed.as_numpy_iterator())
    np.testing.assert_array_equal(first[0], batches[2][0])
    np.testing.assert_array_equal(first[3], batches[2][3])


def test_reid_gradient_reaches_the_trunk_only_when_fine_tuning(trainer, image_index):
    model = trainer.joint
    images, targets, boxes, labels = next(identity_images.identity_image_dataset(
        image_index, 2, 2, IMAGE, model.detector.detection_generator.anchor_config, seed=1)
        .as_numpy_iterator())
    trunk = model.detector.trunk.trainable_variables
    detector_only = (model.detector.rest.trainable_variables
                     + model.detector.fpn.trainable_variables
                     + model.detector.head.trainable_variables)
    branch = model.reid_branch.trainable_variables

    def nonzero(gradients):
        return [g is not None and bool(tf.reduce_any(g != 0.0)) for g in gradients]

    for reid_to_trunk, detection_to_trunk in ((True, True), (False, True), (True, False)):
        with tf.GradientTape(persistent=True) as tape:
            losses = joint_finetune.joint_losses(model, tf.constant(images), targets, boxes,
                                                 labels, margin=0.5,
                                                 reid_to_trunk=reid_to_trunk,
                                                 detection_to_trunk=detection_to_trunk)
        assert float(losses['reid_loss']) > 0.0 and len(losses['labels']) >= 4
        reid_to = nonzero(tape.gradient(losses['reid_loss'], trunk + detector_only + branch))
        detection_to = nonzero(tape.gradient(losses['detection_loss'],
                                             trunk + detector_only + branch))
        del tape
        reid_to_trunk_found = any(reid_to[:len(trunk)])
        assert any(reid_to[-len(branch):])                            # L_reid trains the branch
        assert not any(reid_to[len(trunk):-len(branch)])              # never the detector's own
        # Joint fine-tuning: L_reid trains the shared layers; through the stop_gradient of the
        # two-step training and inference, not one of them.
        assert reid_to_trunk_found == reid_to_trunk
        # L_det trains the detector's own layers, never the branch, and the shared layers
        # unless `detection_trains_trunk=False` stops it at their maps.
        assert any(detection_to[:len(trunk)]) == detection_to_trunk
        assert any(detection_to[len(trunk):-len(branch)]) and not any(detection_to[-len(branch):])
    # Inference embeds through the stop_gradient too (what `embed_boxes` runs, untraced).
    flat = labels >= 0
    with tf.GradientTape() as tape:
        embeddings = model.embed_regions(model.region_source(tf.constant(images)),
                                         tf.constant(boxes[flat]),
                                         tf.constant(np.nonzero(flat)[0].astype(np.int32)), IMAGE)
        loss = tf.reduce_sum(embeddings[:, 0])
    assert not any(nonzero(tape.gradient(loss, trunk)))


@pytest.fixture
def eager():
    """Runs the training steps eagerly: tracing the ResNet-50 training step costs ~45 s of CPU,
    two thirds of this file's budget (`train.py --stage=joint` runs it traced)."""
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


@pytest.mark.slow
def test_steps_resume_and_the_loaders_prefer_the_fine_tuned_model(
        two_step_run, trainer, tiny_synthetic_data_dir, capsys, eager):
    model_dir = two_step_run
    reid_dir, joint_dir = os.path.join(model_dir, 'reid'), os.path.join(model_dir, 'joint')
    assert loading.locate_stage2(model_dir) == (reid_dir, None)
    trunk_before = [v.numpy().copy() for v in trainer.joint.detector.trunk.trainable_variables]
    branch_before = [v.numpy().copy() for v in trainer.joint.reid_branch.trainable_variables]
    assert trainer.train() == {}   # validation disabled
    output = capsys.readouterr().out
    assert 'step 1/2' in output and 'step 2/2' in output and 'reid ' in output
    assert trainer.step == 2
    assert tf.train.latest_checkpoint(os.path.join(joint_dir, 'checkpoints')).endswith('ckpt-2')
    for before, variables in ((trunk_before, trainer.joint.detector.trunk),
                              (branch_before, trainer.joint.reid_branch)):
        assert any(not np.array_equal(b, v.numpy())
                   for b, v in zip(before, variables.trainable_variables))
    saved = json.load(open(os.path.join(joint_dir, 'config.json')))
    assert saved['stage'] == 'joint' and saved['total_steps'] == 2 and saved['variant'] == 'J4'
    assert saved['datasets'] == DATASET
    assert any(name.startswith('events.out') for name in os.listdir(joint_dir + '/train'))

    # A longer run continues from step 2 (the same images sequence, from batch 2).
    longer = joint_finetune.JointTrainer(_config(steps=3), reid_dir, joint_dir,
                                         data_dir=tiny_synthetic_data_dir)
    longer.train()
    output = capsys.readouterr().out
    assert 'from step 2' in output and 'step 3/3' in output and 'step 1/3' not in output
    assert longer.step == 3

    # evaluate.py's loader: the model_dir now means the fine-tuned model, with its trunk.
    located = loading.locate_stage2(model_dir)
    assert located == (joint_dir, None)
    loaded, image_size, resize_mode = loading.load_joint_model(*located)
    assert (image_size, resize_mode) == (IMAGE, 'letterbox')
    for mine, theirs in ((loaded.detector, longer.joint.detector),
                         (loaded.reid_branch, longer.joint.reid_branch)):
        for a, b in zip(mine.weights, theirs.weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    # An explicit checkpoint of the fine-tuning is found as such.
    checkpoint = os.path.join(joint_dir, 'checkpoints', 'ckpt-2')
    assert loading.locate_stage2(checkpoint) == (joint_dir, checkpoint)


@pytest.mark.slow
def test_with_detection_kept_off_the_trunk_only_the_reid_loss_moves_it(
        two_step_run, tiny_synthetic_data_dir, tmp_path, eager):
    # `detection_trains_trunk=False`: L_reid alone moves the trunk's convolutions; its batch
    # norms keep their statistics and scales (not trained, not in the weight decay).
    trainer = joint_finetune.JointTrainer(_config(steps=2, detection_trains_trunk=False),
                                          os.path.join(two_step_run, 'reid'), str(tmp_path),
                                          data_dir=tiny_synthetic_data_dir)
    trunk = trainer.joint.detector.trunk
    norms = [layer for layer in trunk.submodules
             if isinstance(layer, tf.keras.layers.BatchNormalization)]
    norm_weights = [v for layer in norms for v in layer.weights]
    assert norms and not any(layer.trainable_weights for layer in norms)
    assert not {id(v) for v in norm_weights} & {id(v) for v in trainer.variables}
    assert not {id(v) for v in trunk.weights} & {id(v) for v in trainer._decay_variables}
    assert trainer._decay_variables   # the detector's own kernels keep theirs
    statistics_before = [v.numpy().copy() for v in norm_weights]
    convolutions_before = [v.numpy().copy() for v in trunk.trainable_variables]
    trainer.train()   # 2 steps: the first runs at the warm-up's zero rate
    assert trainer.step == 2
    for before, variable in zip(statistics_before, norm_weights):
        np.testing.assert_array_equal(before, variable.numpy())
    assert any(not np.array_equal(b, v.numpy())
               for b, v in zip(convolutions_before, trunk.trainable_variables))
    saved = json.load(open(tmp_path / 'config.json'))
    assert saved['detection_trains_trunk'] is False


def test_an_unfinished_fine_tuning_is_not_preferred(tmp_path):
    directory = str(tmp_path / 'joint')
    tf.train.Checkpoint(v=tf.Variable(1.0)).save(os.path.join(directory, 'checkpoints', 'ckpt'))
    for total_steps, expected in ((5, None), (1, 'ckpt-1')):
        config_lib.save_config(config_lib.PRESETS['synthetic'].joint, directory,
                               total_steps=total_steps)
        found = loading.finished_checkpoint(directory)
        assert (found and os.path.basename(found)) == expected
    assert loading.finished_checkpoint(str(tmp_path / 'nothing')) is None


def test_joint_presets():
    paper, synthetic = config_lib.PRESETS['paper'].joint, config_lib.PRESETS['synthetic'].joint
    assert paper.identities_per_batch * paper.images_per_identity == 10
    assert synthetic.identities_per_batch * synthetic.images_per_identity == 8
    assert config_lib.resolve('synthetic', overrides={'joint': {'steps': 7}}).joint.steps == 7
