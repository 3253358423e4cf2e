"""Optional joint fine-tuning: the paper's global objective minimised directly, after the two
steps.

Why. The paper defines one objective for the whole network, L = L_det + L_reid (§2), but trains
in two steps: the detector first, then the re-ID branch on pooled features, and "gradients from
L_reid are not back-propagated to the shared layers in order to keep detection performance". That
keeps detection precise and allows large P x K batches, but the shared trunk (C1..Ck) then holds
only what detection taught it. This stage is the alternative the paper mentions ("Classically, to
train our multi-task network we have to minimize L directly"), run after the two steps as a
fine-tuning: detector, shared trunk and re-ID branch are trained together, and the re-ID gradient
does reach the shared layers. It is not part of the paper's method and is off by default.

What it trains, on each batch of full images:
- L_det: the stage-1 loss (`ps_tf.losses.detection_loss`: focal + smooth-L1 on the anchor
  targets), plus stage 1's weight decay on the detector's kernels;
- L_reid: TFA's batch-hard triplet loss (`tfa.losses.triplet_hard_loss`, stage 2's second phase)
  with the stage-2 margin, on the (L2-normalised, as stage 2 did) embeddings of every labelled
  ground-truth box of the batch, ROI-aligned on the shared map of the same forward pass *without*
  `tf.stop_gradient` (`JointModel.pool_regions(..., stop_gradient=False)`);
- L = L_det + joint.reid_weight * L_reid; one optimizer (SGD with momentum or Adam, linear-cosine
  decay with warm-up) over every trainable variable of the detector (trunk, rest of the ResNet,
  pyramid, head) and of the re-ID branch.
Gradients: L_det reaches the trunk and the detector's own layers, L_reid the trunk and the re-ID
branch (`joint_losses`, tested in tests/training/test_joint_finetune.py). With
`joint.detection_trains_trunk=False` L_det (and its weight decay) stops at the trunk's maps and
the trunk's batch norms keep their statistics, as in a stage 1 that froze the trunk
(`freeze_shared_trunk`): the shared layers then learn from L_reid alone.

Batches: P identities x K images that show them (`ps_tf.data.identity_images`), every labelled box
of those images entering the triplet loss with its identity; unlabelled people and ignore regions
count for detection only. The re-ID data are the stage-2 run's datasets and split.

Input and output. It starts from a finished two-step run: the stage-2 directory
(`<model_dir>/reid`, finished: its checkpoint at its last step) and the stage-1 detector it
records, loaded as `load_joint_model` loads them. It writes `<model_dir>/joint/`: `config.json`
(these settings and what the loader needs: variant, embedding size, the stage-1 and stage-2
checkpoints it started from, `stage: joint`), `checkpoints/` (detector under `model`, branch under
`reid`, and the optimizer; on multiples of `joint.checkpoint_every` and at the end; a rerun
resumes at its step and the image sampler continues its sequence there), TensorBoard `train/`
(detection, re-ID and total losses, weight decay, triplet statistics, learning rate, images/s)
and `validation/` (search mAP / top-1 at the end), and a progress line on stdout.
`load_joint_model` loads a fine-tuned directory like a stage-2 one, and `locate_stage2` prefers
`<model_dir>/joint` over `<model_dir>/reid` once its last step is saved (`finished_checkpoint`),
so evaluate.py, search.py and the export use the fine-tuned model.
"""

from __future__ import annotations

import math
import os
import time

import tensorflow as tf
from absl import logging

from ps_tf.config import JointConfig, load_trained_reid, save_config
from ps_tf.data import datasets as datasets_lib
from ps_tf.data.identity_images import identity_image_dataset, index_images
from ps_tf.losses import HARD, detection_loss, triplet_loss, triplet_statistics
from ps_tf.models.disjoint import DISJOINT
from ps_tf.models.joint import JointModel
from ps_tf.models.loading import JOINT_STAGE, finished_checkpoint, load_joint_model
from ps_tf.precision import (computes_in_float16, scaled_loss, training_optimizer,
                             unscaled_gradients)
from ps_tf.schedules import LinearCosineDecayWithWarmup
from ps_tf.training import distribution
from ps_tf.training.detection import global_batch_share
from ps_tf.training.loop import CheckpointedLoop, guard_non_finite, validate_search

STAGE = JOINT_STAGE
# The per-replica losses that add up to the global batch's (shares of `global_batch_share`).
DETECTION_LOSSES = ('class_loss', 'box_loss', 'detection_loss')


def joint_losses(model: JointModel, images: tf.Tensor, targets: dict[str, tf.Tensor],
                 boxes: tf.Tensor, labels: tf.Tensor, margin: float, reid_weight: float = 1.0,
                 normalize: bool = True, reid_to_trunk: bool = True,
                 training: bool = True, soft_margin: bool = False,
                 detection_to_trunk: bool = True) -> dict[str, tf.Tensor]:
    """The joint objective of one batch, from one forward pass of the trunk.

    Args:
        model: the joint model (its detector and re-ID branch).
        images: (B, S, S, 3) float32 padded squares.
        targets: the anchor targets of the images (`TrainParser`'s, batched).
        boxes: (B, N, 4) pixel ymin, xmin, ymax, xmax in the padded squares.
        labels: (B, N) int identity labels, -1 = not in the triplet loss (at least one label of
            the batch must be >= 0).
        margin: the triplet margin.
        reid_weight: the weight of L_reid in `total_loss`.
        normalize: L2-normalise the embeddings before the triplet loss (as stage 2's
            `normalize_for_loss`).
        reid_to_trunk: let the re-ID gradient reach the shared trunk (joint fine-tuning); False
            pools through `tf.stop_gradient`, as inference and the two-step training do.
        training: run the networks in training mode.
        soft_margin: batch hard with the soft margin (as stage 2's `soft_margin`).
        detection_to_trunk: let the detection gradient reach the shared trunk; False trains
            the detector's own layers only (`JointConfig.detection_trains_trunk`).

    Returns:
        `class_loss`, `box_loss`, `detection_loss`, `reid_loss`, `total_loss` (scalars), and
        `embeddings` (M, E) (as the loss saw them) and `labels` (M,) of the labelled boxes.
        Under several replicas the detection losses are this replica's (divided by its own
        positives) and the re-ID loss, embeddings and labels the global batch's: the triplets
        are mined over every replica's boxes (`distribution.gather_replicas`).
    """
    outputs = model.detector(images, training=training, trunk_gradient=detection_to_trunk)
    detection = detection_loss(targets, outputs['class_logits'], outputs['box_outputs'])
    labelled = labels >= 0
    box_image_index = tf.cast(tf.where(labelled)[:, 0], tf.int32)
    pooled = model.pool_regions(outputs['shared_features'], tf.boolean_mask(boxes, labelled),
                                box_image_index, int(images.shape[1]),
                                stop_gradient=not reid_to_trunk)
    embeddings = model.reid_branch(pooled, training=training)
    if normalize:
        embeddings = tf.math.l2_normalize(embeddings, axis=-1)
    embeddings = distribution.gather_replicas(embeddings)
    box_labels = distribution.gather_replicas(tf.boolean_mask(labels, labelled))
    reid = triplet_loss(HARD, box_labels, embeddings, margin, soft_margin=soft_margin)
    return {'class_loss': detection['class_loss'], 'box_loss': detection['box_loss'],
            'detection_loss': detection['total_loss'], 'reid_loss': reid,
            'total_loss': detection['total_loss'] + reid_weight * reid,
            'embeddings': embeddings, 'labels': box_labels}


def keep_trunk_statistics(trunk: tf.keras.Model) -> None:
    """Runs the trunk's batch norms in inference mode with fixed statistics and scales, as a
    trunk frozen in stage 1 ran them: the detector's own layers and the re-ID branch were trained
    on the trunk's maps normalised so, and a batch of a few full images would re-estimate them.
    The convolutions stay trainable."""
    for layer in trunk.submodules:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.trainable = False


class JointTrainer(CheckpointedLoop):
    """Owns the joint model, optimizer, checkpoints and summaries of one joint fine-tuning.

    Args:
        config: the joint fine-tuning settings.
        reid_dir: the finished stage-2 directory it starts from (`<model_dir>/reid`).
        output_dir: checkpoints, TensorBoard logs and config.json (`<model_dir>/joint`).
        detection_model_dir: the stage-1 run (None: the one the stage-2 run records).
        data_dir, manual_dir: TFDS locations.
        strategy: distribution strategy (default: the current one); each replica gets 1 / R of
            every batch's images and mines triplets over every replica's boxes.

    Raises:
        ValueError: stage 2 is missing or unfinished, is the disjoint baseline (which shares no
            trunk), or the replicas do not divide the batch.
    """
    description = 'the joint fine-tuning'

    def __init__(self, config: JointConfig, reid_dir: str, output_dir: str,
                 detection_model_dir: str | None = None, data_dir: str | None = None,
                 manual_dir=None, strategy: tf.distribute.Strategy | None = None):
        self.config = config
        self.output_dir = output_dir
        self.data_dir = data_dir
        self.manual_dir = manual_dir
        self.strategy = strategy or tf.distribute.get_strategy()
        self.reid_checkpoint = finished_checkpoint(reid_dir)
        if not self.reid_checkpoint:
            raise ValueError(f'{reid_dir} holds no finished stage 2 (config.json and a checkpoint '
                             f'at its last step): run train.py --stage=reid first')
        self.trained_reid = load_trained_reid(reid_dir)
        unrecorded = [name for name in ('datasets', 'split', 'margin')
                      if getattr(self.trained_reid, name) is None]
        if unrecorded:
            raise ValueError(f'{self.trained_reid.path}: no {", ".join(unrecorded)}; fine-tuning '
                             f'starts from a stage 2 that train.py --stage=reid wrote')
        if self.trained_reid.variant == DISJOINT:
            raise ValueError('joint fine-tuning needs a joint model (J2/J3/J4): the disjoint '
                             'baseline shares no trunk between detection and re-ID')
        replicas = self.strategy.num_replicas_in_sync
        if config.identities_per_batch * config.images_per_identity % replicas:
            raise ValueError(f'the batch of {config.identities_per_batch} identities x '
                             f'{config.images_per_identity} images must be a multiple of '
                             f'the {replicas} replicas')
        if config.optimizer not in ('sgd', 'adam'):
            raise ValueError(f"joint.optimizer must be 'sgd' or 'adam', got "
                             f'{config.optimizer!r}')
        self.total_steps = config.steps
        if self.total_steps < 1:
            raise ValueError(f'joint.steps must be >= 1, got {self.total_steps}')
        self.batch_size = config.identities_per_batch * config.images_per_identity
        self.index = index_images(datasets_lib.parse_dataset_list(self.trained_reid.datasets),
                                  self.trained_reid.split, data_dir, manual_dir)
        self.schedule = LinearCosineDecayWithWarmup(
            config.learning_rate, self.total_steps,
            warmup_steps=min(config.warmup_steps, self.total_steps))
        with self.strategy.scope():
            joint, self.image_size, self.resize_mode = load_joint_model(
                reid_dir, self.reid_checkpoint, detection_model_dir)
            self.joint: JointModel = joint
            if config.optimizer == 'sgd':
                self.optimizer = tf.keras.optimizers.SGD(self.schedule,
                                                         momentum=config.momentum)
            else:
                self.optimizer = tf.keras.optimizers.Adam(self.schedule)
            # The model is restored in the precisions its stages were trained in.
            float16 = computes_in_float16(joint.detector, joint.reid_branch)
            self.optimizer = training_optimizer(self.optimizer, 'float16' if float16
                                                else 'float32')
            if not config.detection_trains_trunk:
                keep_trunk_statistics(joint.detector.trunk)
            self.variables = (joint.detector.trainable_variables
                              + joint.reid_branch.trainable_variables)
            # Slot variables now, so that the train step is traced once, not twice.
            self.optimizer.build(self.variables)
            self._track_checkpoints(tf.train.Checkpoint(model=joint.detector,
                                                        reid=joint.reid_branch,
                                                        optimizer=self.optimizer),
                                    os.path.join(output_dir, 'checkpoints'))
        self.synchronized_batch_norms = (
            distribution.synchronize_batch_norm(joint.detector, self.strategy)
            + distribution.synchronize_batch_norm(joint.reid_branch, self.strategy))
        # Stage 1's weight decay goes with L_det: on the trunk only where L_det trains it.
        trunk = {id(v) for v in joint.detector.trunk.variables}
        self._decay_variables = [
            v for v in joint.detector.trainable_variables
            if 'kernel' in v.name and (config.detection_trains_trunk or id(v) not in trunk)]
        self._train_step = None

    def dataset(self) -> tf.data.Dataset:
        """The P x K image batches from the current step on."""
        config = self.config
        return identity_image_dataset(
            self.index, config.identities_per_batch, config.images_per_identity,
            self.image_size, self.joint.detector.detection_generator.anchor_config,
            seed=config.seed, start_batch=self.step, flip_prob=config.flip_prob,
            resize_mode=self.resize_mode)

    def _train_step_fn(self):
        config, replicas = self.config, self.strategy.num_replicas_in_sync
        margin = self.trained_reid.margin
        normalize = self.trained_reid.normalize_for_loss

        def replica_step(images, targets, boxes, labels):
            with tf.GradientTape() as tape:
                losses = joint_losses(self.joint, images, targets, boxes, labels, margin,
                                      config.reid_weight, normalize,
                                      soft_margin=self.trained_reid.soft_margin,
                                      detection_to_trunk=config.detection_trains_trunk)
                detection = global_batch_share(
                    {k: losses[k] for k in DETECTION_LOSSES}, targets['num_positives'])
                decay = config.weight_decay * tf.add_n(
                    [tf.nn.l2_loss(v) for v in self._decay_variables])
                # Gradients are summed over replicas: the detection shares add up to the global
                # batch's loss; every replica computes the whole re-ID loss (of the gathered
                # batch) and weight decay.
                loss = (detection['detection_loss']
                        + (config.reid_weight * losses['reid_loss'] + decay) / replicas)
                loss_to_differentiate = scaled_loss(self.optimizer, loss)   # x scale (fp16)
            gradients = unscaled_gradients(
                self.optimizer, tape.gradient(loss_to_differentiate, self.variables))
            gradients, finite = guard_non_finite(loss, gradients, self.optimizer)
            self.optimizer.apply_gradients(zip(gradients, self.variables))
            statistics = triplet_statistics(losses['embeddings'], losses['labels'],
                                            margin)
            return {**detection, 'reid_loss': losses['reid_loss'],
                    'weight_decay': decay, 'finite': tf.cast(finite, tf.float32),
                    'boxes': tf.cast(tf.size(losses['labels']), tf.float32), **statistics}

        @tf.function
        def train_step(iterator):
            per_replica = self.strategy.run(replica_step, args=next(iterator))
            reduce_ops = {k: tf.distribute.ReduceOp.SUM if k in DETECTION_LOSSES
                          else tf.distribute.ReduceOp.MEAN for k in per_replica}
            reduced = {k: self.strategy.reduce(reduce_ops[k], v, axis=None)
                       for k, v in per_replica.items()}
            reduced['total_loss'] = (reduced['detection_loss']
                                     + config.reid_weight * reduced['reid_loss'])
            return reduced

        return train_step

    def train_step(self, iterator) -> dict[str, float]:
        """One step (its tf.function is traced on first use)."""
        if self._train_step is None:
            self._train_step = self._train_step_fn()
        return {k: float(v) for k, v in self._train_step(iterator).items()}

    def train(self) -> dict[str, float]:
        """Trains to `total_steps` (resuming if possible); returns the final search metrics."""
        config = self.config
        detector = self.joint.detector
        if self.is_chief:
            self._save_config()
        self.restore()
        if self.step >= self.total_steps:
            logging.info('joint fine-tuning already done (%d steps)', self.step)
            return self.validate()
        iterator = iter(distribution.distribute_global_batches(self.strategy, self.dataset))
        writer = self.summary_writer(os.path.join(self.output_dir, 'train'))
        synchronized = (f'; {self.synchronized_batch_norms} batch norms synchronised'
                        if self.synchronized_batch_norms else '')
        print(f'joint fine-tuning ({detector.variant}): {self.total_steps} steps of '
              f'{config.identities_per_batch} identities x '
              f'{config.images_per_identity} images ({self.image_size} px, '
              f'{self.resize_mode}), L = L_det + '
              f'{config.reid_weight:g} L_reid, from step {self.step}, output '
              f'{self.output_dir}; {distribution.describe(self.strategy)}{synchronized}',
              flush=True)
        window_start, window_steps = time.perf_counter(), 0
        while self.step < self.total_steps:
            values = self.train_step(iterator)
            step = self.step
            if values['finite'] < 1.0 or not math.isfinite(values['total_loss']):
                raise FloatingPointError(
                    f'non-finite loss at step {step} ({values}); its update was not applied, '
                    f'the last good checkpoint is {self.latest_checkpoint}')
            window_steps += 1
            if step % config.log_every == 0 or step == self.total_steps:
                seconds = time.perf_counter() - window_start
                self._log(writer, step, values, window_steps * self.batch_size
                          / max(seconds, 1e-9))
                window_start, window_steps = time.perf_counter(), 0
            self.save(step, config.checkpoint_every)   # on multiples
        self.save(self.step, config.checkpoint_every, final=True)
        return self.validate()

    def _save_config(self) -> None:
        """config.json: these settings and what the loader needs."""
        config = self.config
        detector = self.joint.detector
        save_config(config, self.output_dir, stage=STAGE, variant=detector.variant,
                    image_size=self.image_size, resize_mode=self.resize_mode,
                    embedding_dim=self.joint.embedding_dim,
                    freeze_batch_norm=self.trained_reid.freeze_batch_norm,
                    mixed_precision=self.trained_reid.mixed_precision,
                    margin=self.trained_reid.margin, soft_margin=self.trained_reid.soft_margin,
                    normalize_for_loss=self.trained_reid.normalize_for_loss,
                    source_checkpoint=self.trained_reid.source_checkpoint,
                    reid_checkpoint=self.reid_checkpoint,
                    datasets=self.trained_reid.datasets,
                    split=self.trained_reid.split, total_steps=self.total_steps,
                    num_replicas=self.strategy.num_replicas_in_sync)

    def _log(self, writer, step: int, values: dict, images_per_second: float) -> None:
        learning_rate = float(self.schedule(step))
        with writer.as_default(step=step):
            for name in ('total_loss', 'detection_loss', 'class_loss', 'box_loss', 'reid_loss',
                         'weight_decay'):
                tf.summary.scalar(f'loss/{name}', values[name])
            tf.summary.scalar('triplets/nonzero_fraction', values['nonzero_triplets'])
            tf.summary.scalar('triplets/boxes_per_batch', values['boxes'])
            tf.summary.scalar('distance/positive', values['positive_distance'])
            tf.summary.scalar('distance/negative', values['negative_distance'])
            tf.summary.scalar('learning_rate', learning_rate)
            tf.summary.scalar('images_per_second', images_per_second)
        remaining = (self.total_steps - step) * self.batch_size / max(images_per_second, 1e-9)
        print(f'step {step}/{self.total_steps}  loss {values["total_loss"]:.4f} (det '
              f'{values["detection_loss"]:.4f}: class {values["class_loss"]:.4f}, box '
              f'{values["box_loss"]:.4f}; reid {values["reid_loss"]:.4f} on '
              f'{values["boxes"]:.0f} boxes, non-zero triplets {values["nonzero_triplets"]:.3f})'
              f'  lr {learning_rate:.2e}  {images_per_second:.1f} img/s  '
              f'eta {remaining / 60:.1f} min', flush=True)

    def validate(self) -> dict[str, float]:
        """Search mAP / top-1 of the fine-tuned model on `joint.validation` ('' = nothing)."""
        dataset = self.config.validation
        if not dataset:
            return {}
        return validate_search(self.joint, dataset, self.image_size, self.batch_size,
                               self.data_dir, self.manual_dir, self.output_dir, self.step,
                               f'after joint fine-tuning (step {self.step})',
                               resize_mode=self.resize_mode, write=self.is_chief)


def train_joint(config: JointConfig, model_dir: str, detection_model_dir: str | None = None,
                data_dir: str | None = None, manual_dir=None,
                strategy: tf.distribute.Strategy | None = None) -> dict[str, float]:
    """Joint fine-tuning of a two-step run: `<model_dir>/reid` -> `<model_dir>/joint`."""
    return JointTrainer(config, os.path.join(model_dir, 'reid'), os.path.join(model_dir, STAGE),
                        detection_model_dir, data_dir, manual_dir, strategy).train()
