"""--init_checkpoint: a TF Model Garden COCO RetinaNet checkpoint loads into the paper preset's
detector and computes what the Model Garden's own RetinaNet computes.

The Model Garden model is built here with tf-models-official (the test extra), at a small input
size, with random weights (every batch norm statistic and the head's output layers randomised so
that a swapped or misplaced variable shows), and saved the way its trainer saves checkpoints.
"""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

pytest.importorskip('official')

from official.core import exp_factory  # noqa: E402
from official.vision.configs import retinanet as retinanet_configs  # noqa: E402,F401
from official.vision.modeling import factory as garden_factory  # noqa: E402
from official.vision.ops import anchor as garden_anchor  # noqa: E402
from official.vision.ops import box_ops, preprocess_ops  # noqa: E402

from ps_tf.config import PRESETS  # noqa: E402
from ps_tf.models import coco_init, factory  # noqa: E402
from ps_tf.ops.anchors import generate_anchors  # noqa: E402
from ps_tf.training import detection  # noqa: E402

SIZE = 128        # divisible by the stride of P7, as the Model Garden requires
CLASSES = 91
ATOL = 1e-4
# Float32 sums in another order (oneDNN's blocking differs by CPU): differences grow with the
# values' size (1.5e-4 seen on pyramid outputs of ~10 on an AVX-512 machine); a loading mistake
# differs by O(1).
RELATIVE_TO_LARGEST = 2e-5


def assert_same_outputs(ours, theirs):
    """Equal within float32 summation-order error: ATOL, or RELATIVE_TO_LARGEST of the largest
    magnitude in `theirs` where that is more."""
    theirs = np.asarray(theirs)
    tolerance = max(ATOL, RELATIVE_TO_LARGEST * float(np.abs(theirs).max()))
    np.testing.assert_allclose(ours, theirs, atol=tolerance, rtol=0)


def garden_retinanet(fpn_filters: int = 256) -> tf.keras.Model:
    """The Model Garden's `retinanet_resnetfpn_coco` model at SIZE x SIZE, random weights."""
    model_config = exp_factory.get_exp_config('retinanet_resnetfpn_coco').task.model
    model_config.input_size = [SIZE, SIZE, 3]
    model_config.decoder.fpn.num_filters = fpn_filters
    model = garden_factory.build_retinanet(
        tf.keras.layers.InputSpec(shape=[None, SIZE, SIZE, 3]), model_config)
    rng = np.random.default_rng(0)
    for variable in model.weights:
        name, shape = variable.name, variable.shape
        if 'moving_variance' in name or 'gamma' in name:
            variable.assign(rng.uniform(0.5, 1.5, shape).astype(np.float32))
        elif 'moving_mean' in name or 'beta' in name:
            variable.assign(rng.normal(0.0, 0.2, shape).astype(np.float32))
    # The output layers start near constant (kernels of standard deviation 1e-5).
    for variable in model.head._classifier.weights + model.head._box_regressor.weights:
        variable.assign(rng.normal(0.0, 0.01, variable.shape).astype(np.float32))
    return model


def save_as_the_trainer_does(model: tf.keras.Model, directory) -> str:
    """official/core/base_trainer.py: Checkpoint(global_step, model, optimizer, **items)."""
    checkpoint = tf.train.Checkpoint(global_step=tf.Variable(0, dtype=tf.int64), model=model,
                                     **model.checkpoint_items)
    return checkpoint.save(str(directory / 'ckpt'))


@pytest.fixture(scope='module')
def garden_checkpoint(tmp_path_factory):
    """(the Model Garden RetinaNet, its checkpoint)."""
    model = garden_retinanet()
    return model, save_as_the_trainer_does(model, tmp_path_factory.mktemp('garden'))


def paper_detector():
    config = dataclasses.replace(PRESETS['paper'].detection, image_size=SIZE, variant='J3')
    return factory.built_detector(config)


def test_coco_checkpoint_loads_into_the_paper_detector_and_computes_the_same(garden_checkpoint):
    garden, path = garden_checkpoint
    detector = paper_detector()
    assert coco_init.load_coco_checkpoint(detector, path) == len(detector.weights)

    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (1, SIZE, SIZE, 3)).astype(np.uint8)
    images = tf.constant(pixels, tf.float32)       # ps_tf: [0, 255] RGB, normalised inside
    normalised = preprocess_ops.normalize_image(tf.constant(pixels[0]))[None]   # MG's pipeline

    ours = dict(detector.trunk(images, training=False))
    ours.update(detector.rest(ours['C3'], training=False))
    theirs = garden.backbone(normalised, training=False)
    for level in (3, 4, 5):
        assert_same_outputs(ours[f'C{level}'], theirs[str(level)])

    pyramid = detector.fpn({f'C{k}': ours[f'C{k}'] for k in (3, 4, 5)}, training=False)
    their_pyramid = garden.decoder(theirs, training=False)
    for level in range(3, 8):
        assert_same_outputs(pyramid[f'P{level}'], their_pyramid[str(level)])

    outputs = detector(images, training=False)
    scores, boxes, _ = garden.head(their_pyramid, training=False)
    person = tf.concat([tf.reshape(scores[str(k)], [1, -1, CLASSES])[..., coco_init.PERSON_CLASS]
                        for k in range(3, 8)], axis=1)
    their_codes = tf.concat([tf.reshape(boxes[str(k)], [1, -1, 4]) for k in range(3, 8)], axis=1)
    assert float(tf.math.reduce_std(person)) > 0.1     # the person channel is not a constant
    assert_same_outputs(outputs['class_logits'], person)
    # ps_tf's box codes are the Model Garden's (unscaled) times the box coder scales.
    coder = detector.detection_generator.box_coder
    assert_same_outputs(outputs['box_outputs'] / np.asarray(coder.scales), their_codes)

    # Same anchors in the same order, same decoding: the same boxes.
    anchors = detector.detection_generator.anchor_config
    their_anchors = garden_anchor.Anchor(3, 7, 3, [0.5, 1.0, 2.0], 4.0, [SIZE, SIZE]).boxes
    np.testing.assert_allclose(generate_anchors(anchors, SIZE), their_anchors, atol=1e-3)
    np.testing.assert_allclose(
        coder.decode(outputs['box_outputs'], generate_anchors(anchors, SIZE)),
        box_ops.decode_boxes(their_codes, their_anchors[None]), atol=1e-3, rtol=1e-5)


def test_a_checkpoint_of_another_shape_is_refused_naming_the_variable(tmp_path):
    path = save_as_the_trainer_does(garden_retinanet(fpn_filters=128), tmp_path)
    detector = paper_detector()
    before = [v.numpy() for v in detector.weights[:3]]
    with pytest.raises(ValueError, match=r'lateral_3/kernel\) has shape \(1, 1, 512, 128\), the '
                                         r"detector's .*\(1, 1, 512, 256\)"):
        coco_init.load_coco_checkpoint(detector, path)
    for value, variable in zip(before, detector.weights[:3]):   # nothing assigned
        np.testing.assert_array_equal(value, variable.numpy())


def test_the_keras_layout_is_refused():
    config = dataclasses.replace(PRESETS['synthetic'].detection, image_size=SIZE)
    with pytest.raises(ValueError, match="layout 'keras'"):
        coco_init.load_coco_checkpoint(factory.built_detector(config), 'unused')


def test_a_fresh_run_starts_from_the_checkpoint_and_a_resumed_run_from_its_own(
        garden_checkpoint, tiny_synthetic_data_dir, tmp_path, monkeypatch):
    garden, path = garden_checkpoint

    def counting_steps(trainer):   # what is trained is not the question here: skip the tracing
        def step(iterator):
            trainer.optimizer.iterations.assign_add(1)
            return {'total_loss': 1.0, 'class_loss': 0.5, 'box_loss': 0.5, 'weight_decay': 0.0,
                    'num_positives': 1.0, 'finite': 1.0}
        return step

    monkeypatch.setattr(detection.DetectionTrainer, '_train_step_fn', counting_steps)
    config = dataclasses.replace(
        PRESETS['paper'].detection, init_checkpoint=path, datasets='synthetic_person_search/tiny:1',
        validation='', image_size=64, batch_size=2, steps_per_epoch=1, epochs=1,
        warmup_epochs=1, log_every=1, checkpoint_every=1, eval_every=0, mixed_precision='float32')
    model_dir = str(tmp_path / 'run')
    trainer = detection.DetectionTrainer(config, model_dir, tiny_synthetic_data_dir)
    trainer.train()
    assert trainer.step == 1
    stem_norm = next(layer for layer in garden.backbone.layers
                     if isinstance(layer, tf.keras.layers.BatchNormalization))
    np.testing.assert_array_equal(
        factory.layers_with_weights(trainer.model.trunk)['conv1_bn'].moving_variance.numpy(),
        stem_norm.moving_variance.numpy())
    np.testing.assert_array_equal(trainer.model.head.class_output.bias.numpy(),
                                  garden.head._classifier.bias.numpy()[1::CLASSES])
    # Resumed (here: already finished), the run restores its own checkpoint and never reads
    # init_checkpoint again.
    gone = dataclasses.replace(config, init_checkpoint=str(tmp_path / 'deleted' / 'ckpt-1'))
    detection.DetectionTrainer(gone, model_dir, tiny_synthetic_data_dir).train()
