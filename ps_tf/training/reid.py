"""Stage 2: trains the re-ID branch on pooled features with triplet losses
(docs/architecture.md#stage-2-re-id).

- Input: P x K identity-balanced batches of pooled features (`identity_balanced_dataset`) from a
  complete pooled-feature directory whose manifest matches the branch (variant, pooled shape).
- Model: `ReidBranch`, its replicated ResNet stages initialised from the stage-1 detector the
  features were pooled with (the manifest's `source_checkpoint`). The shared trunk is not part of
  this graph at all (its output was pooled beforehand), so no gradient can reach it. For the
  disjoint baseline (a manifest of variant 'Disj': ground-truth crops), a `DisjointEmbedder`, a
  whole ResNet-50 initialised from the detector's (`ps_tf.models.stage2`), trained the same way.
- Losses: TFA's semi-hard triplet loss for `semi_hard_epochs`, then TFA's batch-hard triplet loss
  for `hard_epochs` (the paper: 350 + 350), both with the same margin, on the L2-normalised
  embeddings (`normalize_for_loss`, default; TFA's losses expect them) or the raw ones, mined
  over the whole P x K batch however many replicas share it (each gathers every replica's
  embeddings: `ps_tf.training.distribution.gather_replicas`; batch norm that trains uses the
  global batch's statistics, and flips are drawn per global batch). The
  functional forms (`tfa.losses.triplet_semihard_loss` / `triplet_hard_loss`, what
  `TripletSemiHardLoss` / `TripletHardLoss` wrap) are used so that no Keras loss reduction gets in
  the way of the distribution strategy. The paper gives no margin; 0.5 is our default.
- Adam with one linear-cosine decay (`LinearCosineDecayWithWarmup`) over both phases.
- Checkpoints (`tf.train.CheckpointManager`) under `<output_dir>/checkpoints` at every multiple
  of `reid.checkpoint_every` steps and at the end (`ps_tf.training.checkpoints`); a rerun resumes at
  its step and phase, and the sampler restarts its deterministic batch sequence there.
- TensorBoard under `<output_dir>/train`: the triplet loss, the fraction of valid triplets
  (anchor, positive, negative) with a non-zero hinge, mean positive and negative distances, the
  mean embedding norm, the learning rate and samples/s; under `<output_dir>/validation`: search mAP
  and top-1 of the joint model on a dataset's gallery/query splits
  (`ps_tf.evaluation.inference.search_metrics`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time

import tensorflow as tf
from absl import logging

from ps_tf.config import PRETRAINED_WEIGHTS, ReidConfig, save_config
from ps_tf.data.identity_sampler import (IdentityBalancedSampler, choose_reader,
                                         gather_features, identity_balanced_dataset,
                                         load_pooled_set, pooled_set_bytes, record_id_dataset)
from ps_tf.data.pooled import manifest as pooled_manifest
from ps_tf.losses import HARD, SEMI_HARD, triplet_loss, triplet_statistics
from ps_tf.models import stage2
from ps_tf.models.disjoint import DISJOINT, DisjointEmbedder
from ps_tf.models.joint import PersonSearchModel
from ps_tf.models.loading import restore_detector
from ps_tf.models.reid import ReidBranch
from ps_tf.models.retinanet import RetinaNetDetector
from ps_tf.precision import (keras_policy, resolve_mixed_precision, scaled_loss, training_optimizer,
                             unscaled_gradients)
from ps_tf.schedules import LinearCosineDecayWithWarmup, PhasedSchedule
from ps_tf.training import distribution, pretraining
from ps_tf.training.loop import CheckpointedLoop, validate_search


def learning_rate_schedule(config: ReidConfig, semi_hard_steps: int, total_steps: int,
                           warmup_steps: int) -> tf.keras.optimizers.schedules.LearningRateSchedule:
    """Adam's learning rate: one linear-cosine decay over both phases ('continuous'), or one per
    phase ('per_phase', the second from `hard_learning_rate`)."""
    if config.schedule == 'continuous':
        return LinearCosineDecayWithWarmup(config.learning_rate, total_steps,
                                           warmup_steps=warmup_steps)
    if config.schedule != 'per_phase':
        raise ValueError(f"reid.schedule must be 'continuous' or 'per_phase', got "
                         f"{config.schedule!r}")
    hard_steps = total_steps - semi_hard_steps
    if semi_hard_steps == 0 or hard_steps == 0:   # one phase only: nothing to restart
        return LinearCosineDecayWithWarmup(
            config.learning_rate if semi_hard_steps else
            config.hard_learning_rate or config.learning_rate, total_steps,
            warmup_steps=warmup_steps)
    first = LinearCosineDecayWithWarmup(config.learning_rate, semi_hard_steps,
                                        warmup_steps=min(warmup_steps, semi_hard_steps))
    second = LinearCosineDecayWithWarmup(config.hard_learning_rate or config.learning_rate,
                                         hard_steps)
    return PhasedSchedule([first, second], [semi_hard_steps])


def flip_pooled(features: tf.Tensor, seed: tf.Tensor, first: int | tf.Tensor = 0,
                batch_size: int | None = None) -> tf.Tensor:
    """Mirrors each pooled box (M, h, w, c) left-right with probability 1/2 (stateless `seed`,
    so a resumed run draws the same flips).

    The draw is one per box of a batch of `batch_size` (default M) of which `features` are rows
    `first` .. `first + M - 1`: a replica's slice of the global batch flips as that batch would
    on one device."""
    rows = tf.shape(features)[0]
    draws = tf.random.stateless_uniform([rows if batch_size is None else batch_size], seed)
    flip = tf.slice(draws, [first], [rows]) < 0.5
    return tf.where(flip[:, None, None, None], tf.reverse(features, axis=[2]), features)


EPOCH_UNITS = ('identities', 'boxes')


def stage2_steps_per_epoch(config: ReidConfig, sampler: IdentityBalancedSampler) -> int:
    """Steps in one stage-2 epoch: `reid.steps_per_epoch` if set, else by `reid.epoch_unit`.

    The paper's "350 epochs" does not say over what. Over identities (the default) an epoch is
    173 steps on CUHK-SYSU's 5,532 training identities but 16 on PRW's 483 (P = 32); over boxes it
    is one pass over as many samples as there are pooled boxes.

    Raises:
        ValueError: an unknown unit.
    """
    if config.epoch_unit not in EPOCH_UNITS:
        raise ValueError(f'reid.epoch_unit must be one of {EPOCH_UNITS}, got '
                         f'{config.epoch_unit!r}')
    if config.steps_per_epoch > 0:
        return config.steps_per_epoch
    if config.epoch_unit == 'boxes':
        return sampler.box_batches_per_epoch
    return sampler.batches_per_epoch


class ReidTrainer(CheckpointedLoop):
    """Owns the re-ID branch, optimizer, checkpoints and summaries of one stage-2 run.

    Args:
        config: the stage-2 settings.
        output_dir: checkpoints, TensorBoard logs and config.json (`<model_dir>/reid`).
        pooled_dir: a complete pooled-feature directory.
        detector: the stage-1 detector the features were pooled with (initialises the branch,
            and with it the joint model is validated).
        image_size: the detector's input side, pixels.
        data_dir, manual_dir: TFDS locations (validation).
        resize_mode: the detector's 'letterbox' or 'stretch' (`resize_and_pad`; validation).
        strategy: distribution strategy (default: the current one); each replica gets 1 / R of
            every batch and mines triplets over all of it.

    Raises:
        ValueError: the manifest is incomplete or does not match the detector's variant, or
            the replicas do not divide P x K.
    """
    description = 'stage 2'

    def __init__(self, config: ReidConfig, output_dir: str, pooled_dir: str,
                 detector: RetinaNetDetector, image_size: int, data_dir: str | None = None,
                 manual_dir=None, strategy: tf.distribute.Strategy | None = None,
                 resize_mode: str = 'letterbox'):
        self.config = config
        self.output_dir = output_dir
        self.detector = detector
        self.image_size = image_size
        self.resize_mode = resize_mode
        self.data_dir = data_dir
        self.manual_dir = manual_dir
        self.strategy = strategy or tf.distribute.get_strategy()
        self.manifest = pooled_manifest.read_manifest(pooled_dir)
        # Crops (Disj) serve any detector; pooled maps only the variant they were pooled for.
        self.variant = DISJOINT if self.manifest.variant == DISJOINT else detector.variant
        pooled_manifest.check_manifest(self.manifest, variant=self.variant,
                                       pooled_shape=stage2.record_shape(self.variant))
        replicas = self.strategy.num_replicas_in_sync
        batch = config.identities_per_batch * config.samples_per_identity
        if batch % replicas:
            raise ValueError(f'the P x K batch ({config.identities_per_batch} x '
                             f'{config.samples_per_identity}) must be a multiple of the '
                             f'{replicas} replicas')
        sampler = IdentityBalancedSampler(self.manifest.identity_counts,
                                          config.identities_per_batch,
                                          config.samples_per_identity, config.seed)
        self.steps_per_epoch = stage2_steps_per_epoch(config, sampler)
        self.semi_hard_steps = int(round(config.semi_hard_epochs * self.steps_per_epoch))
        self.total_steps = self.semi_hard_steps + int(round(config.hard_epochs
                                                            * self.steps_per_epoch))
        if self.total_steps < 1:
            raise ValueError('reid.semi_hard_epochs + reid.hard_epochs give no training step')
        warmup = min(self.total_steps, int(round(config.warmup_epochs
                                                 * self.steps_per_epoch)))
        self.schedule = learning_rate_schedule(config, self.semi_hard_steps, self.total_steps,
                                               warmup)
        tf.keras.utils.set_random_seed(config.seed)   # the embedding layer's initialisation
        with self.strategy.scope():
            self.branch: ReidBranch | DisjointEmbedder = stage2.build_stage2_model(
                self.variant, detector, config.embedding_dim, config.freeze_batch_norm,
                keras_policy(config.mixed_precision), config.initial_weights)
            self.optimizer = training_optimizer(tf.keras.optimizers.Adam(self.schedule),
                                                config.mixed_precision)
            # Slot variables now, so that each phase's train step is traced once, not twice.
            self.optimizer.build(self.branch.trainable_variables)
            self._track_checkpoints(tf.train.Checkpoint(reid=self.branch,
                                                        optimizer=self.optimizer),
                                    os.path.join(output_dir, 'checkpoints'))
        self.synchronized_batch_norms = distribution.synchronize_batch_norm(self.branch,
                                                                            self.strategy)
        self._steps = {}
        self._pooled_table: tf.Variable | None = None   # set by `train` for in-memory input
        self._joint: PersonSearchModel | None = None

    def phase(self, step: int) -> str:
        """The loss of (0-based) step `step`: semi-hard first, then batch hard."""
        return SEMI_HARD if step < self.semi_hard_steps else HARD

    def joint_model(self) -> PersonSearchModel:
        """The detector and this branch (or embedder) as one model (built once: its graphs are
        reused)."""
        if self._joint is None:
            self._joint = stage2.person_search_model(self.detector, self.branch)
        return self._joint

    def _train_step_fn(self, phase: str):
        margin, replicas = self.config.margin, self.strategy.num_replicas_in_sync
        soft_margin = self.config.soft_margin
        normalize = self.config.normalize_for_loss
        variables = self.branch.trainable_variables

        flip, seed = self.config.flip, self.config.seed

        table = self._pooled_table

        def replica_step(features, labels):
            if table is not None:   # the pooled set is in memory: `features` are record ids
                features = gather_features(table, features)
            if flip:
                replica = tf.distribute.get_replica_context().replica_id_in_sync_group
                per_replica = tf.shape(labels)[0]
                features = flip_pooled(
                    features, tf.stack([tf.cast(seed, tf.int64), self.optimizer.iterations]),
                    first=tf.cast(replica, tf.int32) * per_replica,
                    batch_size=per_replica * replicas)
            with tf.GradientTape() as tape:
                raw = self.branch(features, training=True)
                embeddings = tf.math.l2_normalize(raw, axis=-1) if normalize else raw
                # The whole P x K batch: every replica's embeddings, in replica order.
                embeddings = distribution.gather_replicas(embeddings)
                labels = distribution.gather_replicas(labels)
                loss = triplet_loss(phase, labels, embeddings, margin,
                                    soft_margin=soft_margin and phase == HARD)
                # Every replica computes the global batch's loss and differentiates L / R: the
                # gathering sends each replica the gradient of its own slice summed over the
                # replicas, and the strategy sums the replicas' gradients.
                replica_loss = loss / replicas
                loss_to_differentiate = scaled_loss(self.optimizer, replica_loss)
            gradients = unscaled_gradients(
                self.optimizer, tape.gradient(loss_to_differentiate, variables))
            self.optimizer.apply_gradients(zip(gradients, variables))
            statistics = triplet_statistics(embeddings, labels, margin)   # the global batch's
            statistics['embedding_norm'] = tf.reduce_mean(tf.norm(raw, axis=-1))   # before any
            return {'loss': loss, **statistics}                                     # normalising

        @tf.function
        def train_step(iterator):
            features, labels = next(iterator)
            per_replica = self.strategy.run(replica_step, args=(features, labels))
            return {k: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                    for k, v in per_replica.items()}

        return train_step

    def train_step(self, iterator) -> dict[str, float]:
        """One step of the current phase (its tf.function is traced on first use)."""
        phase = self.phase(self.step)
        if phase not in self._steps:
            self._steps[phase] = self._train_step_fn(phase)
        return {k: float(v) for k, v in self._steps[phase](iterator).items()}

    def train(self) -> dict[str, float]:
        """Trains to `total_steps` (resuming if possible); returns the last validation metrics."""
        config = self.config
        if self.is_chief:
            save_config(config, self.output_dir, variant=self.variant,
                        image_size=self.image_size, resize_mode=self.resize_mode,
                        pooled_dir=self.manifest.directory,
                        source_checkpoint=self.manifest.source_checkpoint,
                        total_steps=self.total_steps, semi_hard_steps=self.semi_hard_steps,
                        steps_per_epoch=self.steps_per_epoch,
                        num_replicas=self.strategy.num_replicas_in_sync,
                        resolved_mixed_precision=resolve_mixed_precision(
                            config.mixed_precision))
        self.restore()
        if self.step >= self.total_steps:
            logging.info('stage 2 already trained (%d steps)', self.step)
            return self.validate()
        on_gpu = bool(tf.config.list_logical_devices('GPU'))
        reader = choose_reader(self.manifest, config.in_memory_budget, copies=1 + (
            0 if on_gpu else self.strategy.num_replicas_in_sync))
        started = time.perf_counter()
        start = self.step
        if reader == 'memory':
            features, _ = load_pooled_set(self.manifest)
            # One copy per device; steps gather their batch there. Not across workers: a
            # variable of a multi-worker strategy takes its value by a broadcast from the chief,
            # and every worker has loaded the same set.
            scope = (self.strategy.scope() if distribution.num_workers(self.strategy) == 1
                     else contextlib.nullcontext())
            with scope:
                self._pooled_table = tf.Variable(features, trainable=False,
                                                 name='pooled_features')
            del features
            self._steps = {}

            def make_dataset():
                return record_id_dataset(
                    self.manifest, config.identities_per_batch, config.samples_per_identity,
                    config.seed, start_batch=start)
        else:
            def make_dataset():
                return identity_balanced_dataset(
                    self.manifest, config.identities_per_batch, config.samples_per_identity,
                    config.seed, start_batch=start,
                    num_parallel_reads=config.num_parallel_reads)
        print(f'stage 2 input: {pooled_set_bytes(self.manifest) / 2**30:.2f} GiB of pooled '
              f'features, ' + (f'loaded into memory in {time.perf_counter() - started:.0f} s'
                               if reader == 'memory' else
                               'read from disk per batch (--reid.in_memory_budget)'), flush=True)
        iterator = iter(distribution.distribute_global_batches(self.strategy, make_dataset))
        writer = self.summary_writer(os.path.join(self.output_dir, 'train'))
        batch = config.identities_per_batch * config.samples_per_identity
        synchronized = (f'; {self.synchronized_batch_norms} batch norms synchronised'
                        if self.synchronized_batch_norms else '')
        print(f'stage 2 (re-ID, {self.variant}): {self.total_steps} steps '
              f'({self.semi_hard_steps} semi-hard, then batch hard; {self.steps_per_epoch}/epoch '
              f'({"set" if config.steps_per_epoch > 0 else config.epoch_unit}), '
              f'P x K = {config.identities_per_batch} x {config.samples_per_identity}) from step '
              f'{self.step}, output {self.output_dir}; {distribution.describe(self.strategy)}'
              f'{synchronized}', flush=True)
        window_start, window_steps = time.perf_counter(), 0
        while self.step < self.total_steps:
            phase = self.phase(self.step)
            values = self.train_step(iterator)
            step = self.step
            if not math.isfinite(values['loss']):
                raise FloatingPointError(f'non-finite triplet loss at step {step}; the last good '
                                         f'checkpoint is {self.latest_checkpoint}')
            window_steps += 1
            if step % config.log_every == 0 or step == self.total_steps:
                seconds = time.perf_counter() - window_start
                self._log(writer, step, phase, values, window_steps * batch / max(seconds, 1e-9))
                window_start, window_steps = time.perf_counter(), 0
            self.save(step, config.checkpoint_every)   # on multiples
            if config.eval_every and step % config.eval_every == 0 \
                    and step < self.total_steps:
                self.validate()
        self.save(self.step, config.checkpoint_every, final=True)
        return self.validate()

    def _log(self, writer, step: int, phase: str, values: dict, samples_per_second: float):
        learning_rate = float(self.schedule(step))
        with writer.as_default(step=step):
            tf.summary.scalar(f'loss/triplet_{phase}', values['loss'])
            tf.summary.scalar('triplets/nonzero_fraction', values['nonzero_triplets'])
            tf.summary.scalar('distance/positive', values['positive_distance'])
            tf.summary.scalar('distance/negative', values['negative_distance'])
            tf.summary.scalar('embedding/norm', values['embedding_norm'])
            tf.summary.scalar('learning_rate', learning_rate)
            tf.summary.scalar('samples_per_second', samples_per_second)
        print(f'step {step}/{self.total_steps} [{phase}]  loss {values["loss"]:.4f}  '
              f'non-zero triplets {values["nonzero_triplets"]:.3f}  '
              f'd+ {values["positive_distance"]:.3f} d- {values["negative_distance"]:.3f}  '
              f'|e| {values["embedding_norm"]:.2f}  lr {learning_rate:.2e}  '
              f'{samples_per_second:.0f} samples/s', flush=True)

    def validate(self) -> dict[str, float]:
        """Search mAP / top-1 on `reid.validation` (nothing when it is '')."""
        dataset = self.config.validation
        if not dataset:
            return {}
        return validate_search(self.joint_model(), dataset, self.image_size,
                               self.config.pooling_batch_size, self.data_dir, self.manual_dir,
                               self.output_dir, self.step, f'at step {self.step}',
                               resize_mode=self.resize_mode, write=self.is_chief)


def resolve_initial_weights(initial_weights: str, detection_model_dir: str) -> str:
    """`reid.initial_weights` with 'pretrained' replaced by the pretraining the detector in
    `detection_model_dir` started from (`<detection_model_dir>/pretrain/resnet50.h5`).

    Raises:
        FileNotFoundError: 'pretrained', and the detector's run has no pretraining.
    """
    if initial_weights != PRETRAINED_WEIGHTS:
        return initial_weights
    path = pretraining.weights_path(os.path.join(detection_model_dir, 'pretrain'))
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"reid.initial_weights='{PRETRAINED_WEIGHTS}' starts stage 2 from the pretraining "
            f"the detector started from, {path}, which does not exist: choose 'detector' or a "
            'ResNet-50 weights file')
    return path


def train_reid(config: ReidConfig, output_dir: str, pooled_dir: str,
               detection_model_dir: str | None = None, data_dir: str | None = None,
               manual_dir=None, strategy: tf.distribute.Strategy | None = None
               ) -> dict[str, float]:
    """Stage 2 end to end: restores the detector the features were pooled with (the manifest's
    `source_checkpoint`) from `detection_model_dir` (default: the checkpoint's run directory)
    and trains the branch (`ReidTrainer`)."""
    manifest = pooled_manifest.read_manifest(pooled_dir)
    checkpoint = manifest.source_checkpoint
    detection_model_dir = detection_model_dir or os.path.dirname(os.path.dirname(checkpoint))
    config = dataclasses.replace(config, initial_weights=resolve_initial_weights(
        config.initial_weights, detection_model_dir))
    with (strategy or tf.distribute.get_strategy()).scope():
        detector, detection_config, _ = restore_detector(
            detection_model_dir, checkpoint,
            variant=None if manifest.variant == DISJOINT else manifest.variant)
    return ReidTrainer(config, output_dir, pooled_dir, detector, detection_config.image_size,
                       data_dir, manual_dir, strategy,
                       resize_mode=detection_config.resize_mode).train()
