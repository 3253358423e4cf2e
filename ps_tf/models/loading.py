"""Loads trained models from what the training commands write, for evaluation, export and search.

A `train.py --model_dir` holds `checkpoints/` and `config.json` of stage 1 (the detector), `reid/`
of stage 2 (the re-ID branch, or the disjoint baseline's embedder) and, after the optional joint
fine-tuning, `joint/` (`ps_tf.training.joint_finetune`). These functions find and restore them
without any training code, so that inference never depends on how a model was trained:

- `restore_detector`: the stage-1 detector of a run, as any of J2/J3/J4 (`factory.with_variant`).
- `locate_stage2`: the stage-2 (or joint) directory and checkpoint of whatever path a user gives.
- `load_joint_model`: the detector and the re-ID network as one `PersonSearchModel`, with the
  input geometry the detector was trained with (`image_size`, `resize_mode`).
"""

from __future__ import annotations

import dataclasses
import json
import os

import tensorflow as tf
from absl import logging

from ps_tf.config import DetectionConfig, load_detection_config, load_trained_reid
from ps_tf.models import factory, stage2
from ps_tf.models.disjoint import DISJOINT
from ps_tf.models.joint import PersonSearchModel
from ps_tf.models.retinanet import RetinaNetDetector
from ps_tf.precision import keras_policy

JOINT_STAGE = 'joint'   # the joint fine-tuning's directory under a model_dir (and its stage name)


def restore_detector(detection_model_dir: str, checkpoint: str | None = None,
                     variant: str | None = None, precision: str | None = None
                     ) -> tuple[RetinaNetDetector, DetectionConfig, str]:
    """The stage-1 detector of a run directory, restored from its latest (or a given) checkpoint.

    Args:
        detection_model_dir: the stage-1 run (`config.json`, `checkpoints/`).
        checkpoint: a checkpoint path; None = the run's latest.
        variant: the variant to return it as (None = the run's own). The detector is the same
            network for J2, J3 and J4 (the variant only says where the re-ID branch leaves it),
            so one stage-1 run serves all three (`with_variant`).
        precision: compute precision to restore it in, 'float32', 'bfloat16' or 'auto' (as
            `DetectionConfig.mixed_precision`); None = the run's own. Variables are float32 in
            every precision, so any checkpoint restores in any precision.

    Returns:
        (detector, its config (with `variant`), the checkpoint path restored).

    Raises:
        ValueError: no config or no checkpoint.
    """
    config = load_detection_config(detection_model_dir)
    if precision:
        config = dataclasses.replace(config, mixed_precision=precision)
    checkpoint = checkpoint or tf.train.latest_checkpoint(
        os.path.join(detection_model_dir, 'checkpoints'))
    if not checkpoint:
        raise ValueError(f'no stage-1 checkpoint in {detection_model_dir}/checkpoints: train the '
                         f'detector first (train.py --stage=detection)')
    detector = factory.built_detector(config)
    tf.train.Checkpoint(model=detector).restore(checkpoint).expect_partial() \
        .assert_existing_objects_matched()
    logging.info('restored the %s detector from %s', config.variant, checkpoint)
    if variant and variant != config.variant:
        detector = factory.with_variant(detector, config, variant)
        config = dataclasses.replace(config, variant=variant)
    return detector, config, checkpoint


def _read_json(path: str) -> dict:
    """A JSON file's content (local or remote path)."""
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def _checkpoint_step(checkpoint: str) -> int:
    """The step in a CheckpointManager name (`.../ckpt-<step>`)."""
    return int(checkpoint.rsplit('-', 1)[-1])


def finished_checkpoint(directory: str) -> str | None:
    """The checkpoint of a finished training directory (a stage-2 or a joint one: `config.json`
    with `total_steps`, `checkpoints/`): the latest checkpoint if it is at the last step, else
    None."""
    config_path = os.path.join(directory, 'config.json')
    if not tf.io.gfile.exists(config_path):
        return None
    latest = tf.train.latest_checkpoint(os.path.join(directory, 'checkpoints'))
    total = _read_json(config_path).get('total_steps')
    if latest and total is not None and _checkpoint_step(latest) >= total:
        return latest
    return None


def locate_stage2(path: str) -> tuple[str, str | None]:
    """(stage-2 directory, checkpoint or None = latest) for what a user may point at.

    Accepts a `train.py --model_dir` (its `joint/` when the optional joint fine-tuning has saved
    its last step, else its `reid/`), a stage-2 or joint fine-tuning directory (`config.json` and
    `checkpoints/`), or a checkpoint prefix of either (`.../reid/checkpoints/ckpt-84`).

    Raises:
        ValueError: none of these, naming the path.
    """
    path = path.rstrip('/')
    if finished_checkpoint(os.path.join(path, JOINT_STAGE)):
        return os.path.join(path, JOINT_STAGE), None
    if tf.io.gfile.exists(os.path.join(path, 'reid', 'config.json')):
        return os.path.join(path, 'reid'), None
    if tf.io.gfile.exists(os.path.join(path, 'config.json')) and \
            tf.io.gfile.isdir(os.path.join(path, 'checkpoints')):
        return path, None
    if tf.io.gfile.exists(path + '.index'):
        return os.path.dirname(os.path.dirname(path)), path
    raise ValueError(f'{path} is neither a train.py model_dir with a finished stage 2 '
                     f'(<model_dir>/reid/config.json), a stage-2 directory, nor a stage-2 '
                     f'checkpoint (<model_dir>/reid/checkpoints/ckpt-N); run train.py first')


def load_joint_model(reid_dir: str, checkpoint: str | None = None,
                     detection_model_dir: str | None = None,
                     precision: str | None = None) -> tuple[PersonSearchModel, int, str]:
    """The joint model of a finished (or running) stage 2: its detector (the checkpoint the
    features were pooled with) and its re-ID branch (latest or given checkpoint); for the
    disjoint baseline, a `DisjointModel` (the detector and the crop embedder). A joint
    fine-tuning directory (`<model_dir>/joint`, config `stage: joint`) loads the same way, its
    checkpoint then holding the detector too (restored over the stage-1 one).

    Args:
        reid_dir: the stage-2 output directory (`<model_dir>/reid`) or a joint fine-tuning one.
        checkpoint: a checkpoint of that directory; None = the latest.
        detection_model_dir: the stage-1 run; None = the directory of the detector checkpoint
            recorded in the stage-2 config.
        precision: inference precision of the whole model, 'float32', 'bfloat16' or 'auto'
            ('bfloat16' on a CPU with bfloat16 units); None = what each stage was trained in.

    Returns:
        (joint model, the detector's input image size, its resize mode 'letterbox' or
        'stretch'): every image the model sees must be resized as
        `resize_and_pad(image, image_size, resize_mode)` does.

    Raises:
        ValueError: no stage-2 config or checkpoint.
    """
    saved = load_trained_reid(reid_dir)
    checkpoint = checkpoint or tf.train.latest_checkpoint(os.path.join(reid_dir, 'checkpoints'))
    if not checkpoint:
        raise ValueError(f'no stage-2 checkpoint in {reid_dir}/checkpoints')
    source = saved.source_checkpoint
    beside = os.path.join(os.path.dirname(os.path.abspath(reid_dir)), 'checkpoints',
                          os.path.basename(source))
    if not detection_model_dir and not tf.io.gfile.exists(source + '.index') \
            and tf.io.gfile.exists(beside + '.index'):
        # The run was trained from another working directory (a relative --model_dir) or moved:
        # the stage-1 checkpoint is the one beside the stage-2 directory, as train.py lays out.
        source = beside
    disjoint = saved.variant == DISJOINT
    detector, detection_config, _ = restore_detector(
        detection_model_dir or os.path.dirname(os.path.dirname(source)), source,
        variant=None if disjoint else saved.variant, precision=precision)
    network = stage2.build_stage2_model(
        DISJOINT if disjoint else detector.variant, detector, saved.embedding_dim,
        saved.freeze_batch_norm, keras_policy(precision or saved.mixed_precision),
        initialise=False)
    tf.train.Checkpoint(reid=network).restore(checkpoint).expect_partial() \
        .assert_existing_objects_matched()
    if saved.stage == 'joint':   # fine-tuned: the detector and trunk changed too
        tf.train.Checkpoint(model=detector).restore(checkpoint).expect_partial() \
            .assert_existing_objects_matched()
    return (stage2.person_search_model(detector, network), detection_config.image_size,
            detection_config.resize_mode)
