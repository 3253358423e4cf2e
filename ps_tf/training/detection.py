"""Stage 1: trains the RetinaNet detector (and with it the shared trunk).

A custom loop inside a `tf.distribute` strategy (MirroredStrategy over the machine's devices by
default), so the same code runs on one CPU, several GPUs or several workers
(`ps_tf.training.distribution`: every replica takes its slice of the same global batch, the
losses are divided by the global batch's positives, and batch norm that trains uses the global
batch's statistics, so R replicas compute what one device computes on the global batch):
- SGD with momentum and linear-cosine decay with warm-up (`ps_tf.schedules`);
- checkpoints at every multiple of `checkpoint_every` steps and at the end
  (`ps_tf.training.checkpoints`; `tf.train.CheckpointManager` writes to temporary names and then
  renames); a restarted run resumes from the latest one and loses at most the steps since;
- a non-finite loss skips the update, stops the run with an error naming the step and keeps the
  last good checkpoint;
- TensorBoard: losses, learning rate and images/s under `<model_dir>/train`, detection AP /
  recall and pictures of detections under `<model_dir>/validation`;
- a progress line on stdout every `log_every` steps.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
import tensorflow as tf
from absl import logging

from ps_tf import visualization
from ps_tf.config import DetectionConfig, save_config
from ps_tf.data import datasets as datasets_lib
from ps_tf.evaluation import detection_split
from ps_tf.losses import detection_loss
from ps_tf.models import coco_init
from ps_tf.models.factory import anchor_config, build_model
from ps_tf.ops.geometry import check_resize_mode
from ps_tf.precision import (resolve_mixed_precision, scaled_loss, training_optimizer,
                             unscaled_gradients)
from ps_tf.schedules import LinearCosineDecayWithWarmup
from ps_tf.training import distribution
from ps_tf.training.loop import CheckpointedLoop, guard_non_finite


def steps_per_epoch(config: DetectionConfig, data_dir: str | None, manual_dir=None) -> int:
    """`config.steps_per_epoch`, or the training images of all datasets / batch size."""
    if config.steps_per_epoch:
        return config.steps_per_epoch
    images = sum(datasets_lib.split_size(d.name, 'train', data_dir, manual_dir)
                 for d in datasets_lib.parse_dataset_spec(config.datasets))
    return max(1, images // config.batch_size)


def training_mix(config: DetectionConfig, data_dir: str | None,
                 manual_dir=None) -> list[datasets_lib.DatasetWeight]:
    """The datasets and sampling weights stage 1 draws from (`datasets`, `dataset_mixing`)."""
    entries = datasets_lib.parse_dataset_spec(config.datasets)
    if config.dataset_mixing not in datasets_lib.MIXING_MODES:
        raise ValueError(f'dataset_mixing must be one of {datasets_lib.MIXING_MODES}, got '
                         f'{config.dataset_mixing!r}')
    if config.dataset_mixing == 'size':
        entries = datasets_lib.size_weighted(entries, 'train', data_dir, manual_dir)
    return entries


def mix_shares(mix: list[datasets_lib.DatasetWeight]) -> str:
    """'name 33%, name 67%': the share of the images each dataset gives."""
    total = sum(entry.weight for entry in mix)
    return ', '.join(f'{entry.name} {entry.weight / total:.0%}' for entry in mix)


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


# Per-replica outputs of a step that add up to the global batch's (the others are averaged).
SUMMED_OUTPUTS = ('class_loss', 'box_loss', 'total_loss', 'num_positives')


def global_batch_share(losses: dict[str, tf.Tensor], num_positives: tf.Tensor
                       ) -> dict[str, tf.Tensor]:
    """A replica's share of the global batch's detection losses: `detection_loss` divides the
    replica's sums by its own positives + 1; these divide them by the global batch's, so that
    the shares of all replicas add up to the loss one device computes on the global batch."""
    local = tf.reduce_sum(tf.cast(num_positives, tf.float32))
    total = distribution.sum_over_replicas(local)
    scale = (local + 1.0) / (total + 1.0)
    return {name: value * tf.cast(scale, value.dtype) for name, value in losses.items()}


class DetectionTrainer(CheckpointedLoop):
    """Owns the model, optimizer, checkpoints and summaries of one stage-1 run."""
    description = 'stage 1'

    def __init__(self, config: DetectionConfig, model_dir: str, data_dir: str | None = None,
                 manual_dir=None, strategy: tf.distribute.Strategy | None = None):
        check_resize_mode(config.resize_mode)   # before anything is written
        self.config = config
        self.model_dir = model_dir
        self.data_dir = data_dir
        self.manual_dir = manual_dir
        self.strategy = strategy or tf.distribute.MirroredStrategy()
        self.steps_per_epoch = steps_per_epoch(config, data_dir, manual_dir)
        self.mix = training_mix(config, data_dir, manual_dir)
        self.total_steps = max(1, int(round(config.epochs * self.steps_per_epoch)))
        warmup = min(self.total_steps, int(round(config.warmup_epochs * self.steps_per_epoch)))
        self.schedule = LinearCosineDecayWithWarmup(config.base_learning_rate, self.total_steps,
                                                    warmup_steps=warmup)
        # Seeds the weight initialisation too (the data order has its own seeded pipeline), so
        # that a rerun of one config starts from the same weights.
        tf.keras.utils.set_random_seed(config.seed)
        with self.strategy.scope():
            self.model = build_model(config)
            self.model(tf.zeros([1, config.image_size, config.image_size, 3]), training=False)
            if config.freeze_shared_trunk:
                # Not trainable: no gradient, no weight decay, and Keras runs its batch norm in
                # inference mode, so the shared map stays the initial trunk's.
                self.model.trunk.trainable = False
            self.optimizer = training_optimizer(
                tf.keras.optimizers.SGD(self.schedule, momentum=config.momentum),
                config.mixed_precision)
            # Slot variables now: a train step that creates them on its first call is traced
            # twice by tf.function (half of a run's start-up).
            self.optimizer.build(self.model.trainable_variables)
            self._track_checkpoints(
                tf.train.Checkpoint(model=self.model, optimizer=self.optimizer),
                os.path.join(model_dir, 'checkpoints'))
        self.synchronized_batch_norms = distribution.synchronize_batch_norm(self.model,
                                                                            self.strategy)
        if config.init_checkpoint:   # before anything is written: the detector must fit it
            coco_init.check_detector(self.model)
        self._decay_variables = [v for v in self.model.trainable_variables
                                 if 'kernel' in v.name]
        # Traced once and reused by every periodic validation (a new tf.function per call
        # would retrace the whole detector each time).
        self._detect = tf.function(self.model.detect, reduce_retracing=True)

    def _train_step_fn(self):
        config = self.config
        replicas = self.strategy.num_replicas_in_sync

        def replica_step(images, targets):
            with tf.GradientTape() as tape:
                outputs = self.model(images, training=True)
                losses = global_batch_share(
                    detection_loss(targets, outputs['class_logits'], outputs['box_outputs']),
                    targets['num_positives'])
                decay = config.weight_decay * tf.add_n(
                    [tf.nn.l2_loss(v) for v in self._decay_variables])
                # Gradients are summed over replicas: the loss shares add up to the global
                # batch's; every replica computes the whole weight decay.
                loss = losses['total_loss'] + decay / replicas
                loss_to_differentiate = scaled_loss(self.optimizer, loss)   # x scale (fp16)
            variables = self.model.trainable_variables
            gradients = unscaled_gradients(self.optimizer,
                                           tape.gradient(loss_to_differentiate, variables))
            gradients, finite = guard_non_finite(losses['total_loss'], gradients, self.optimizer)
            self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
            return {**losses, 'weight_decay': decay, 'finite': tf.cast(finite, tf.float32),
                    'num_positives': tf.cast(tf.reduce_sum(targets['num_positives']),
                                             tf.float32)}

        @tf.function
        def train_step(iterator):
            images, targets = next(iterator)
            per_replica = self.strategy.run(replica_step, args=(images, targets))
            # 'finite' averages to 1 only when every replica's step was finite.
            reduce_ops = {k: tf.distribute.ReduceOp.SUM if k in SUMMED_OUTPUTS
                          else tf.distribute.ReduceOp.MEAN for k in per_replica}
            return {k: self.strategy.reduce(reduce_ops[k], v, axis=None)
                    for k, v in per_replica.items()}

        return train_step

    def train(self) -> dict[str, float]:
        """Trains to `total_steps` (resuming if possible); returns the last validation metrics."""
        config = self.config
        if self.is_chief:
            save_config(config, self.model_dir, total_steps=self.total_steps,
                        resolved_mixed_precision=resolve_mixed_precision(config.mixed_precision),
                        steps_per_epoch=self.steps_per_epoch,
                        num_replicas=self.strategy.num_replicas_in_sync)
        fresh = not self.latest_checkpoint
        self.restore()
        if fresh:
            self._initialise()
        if self.step >= self.total_steps:
            logging.info('already trained (%d steps)', self.step)
            return self.validate()
        start = self.step
        iterator = iter(distribution.distribute_global_batches(
            self.strategy, lambda: datasets_lib.detection_train_dataset(
                self.mix, config.image_size, config.batch_size, data_dir=self.data_dir,
                seed=config.seed + start, manual_dir=self.manual_dir,
                anchor_config=anchor_config(config), flip_prob=config.flip_prob,
                resize_mode=config.resize_mode)))
        train_step = self._train_step_fn()
        writer = self.summary_writer(os.path.join(self.model_dir, 'train'))
        synchronized = (f'; {self.synchronized_batch_norms} batch norms synchronised'
                        if self.synchronized_batch_norms else '')
        print(f'stage 1 (detection, {config.variant}): {self.total_steps} steps '
              f'({self.steps_per_epoch}/epoch, batch {config.batch_size}, '
              f'{config.image_size} px, {config.resize_mode}) from step {self.step}, model_dir '
              f'{self.model_dir}; data {mix_shares(self.mix)}; '
              f'{distribution.describe(self.strategy)}{synchronized}', flush=True)
        window_start, window_steps = time.perf_counter(), 0
        while self.step < self.total_steps:
            losses = {k: float(v) for k, v in train_step(iterator).items()}
            step = self.step
            if losses['finite'] < 1.0 or not math.isfinite(losses['total_loss']):
                raise NonFiniteLossError(
                    f'non-finite loss at step {step} ({losses}); its update was not applied, the '
                    f'last good checkpoint is {self.latest_checkpoint} '
                    '(lower --base_learning_rate or check the data)')
            window_steps += 1
            if step % config.log_every == 0 or step == self.total_steps:
                seconds = time.perf_counter() - window_start
                images_per_second = window_steps * config.batch_size / max(seconds, 1e-9)
                self._log(writer, step, losses, images_per_second)
                window_start, window_steps = time.perf_counter(), 0
            self.save(step, config.checkpoint_every)   # on its multiples
            if config.eval_every and step % config.eval_every == 0 and step < self.total_steps:
                self.validate()
        self.save(self.step, config.checkpoint_every, final=True)
        return self.validate()

    def _initialise(self) -> None:
        """A fresh run (nothing to resume) starts from `init_checkpoint`, if given; a resumed run
        has its own checkpoint."""
        config = self.config
        if config.init_checkpoint:
            coco_init.load_coco_checkpoint(self.model, config.init_checkpoint)
            print(f'stage 1: detector initialised from {config.init_checkpoint}', flush=True)
        elif config.layout == 'garden':
            logging.warning('the garden layout without --init_checkpoint: the detector starts '
                            'from random weights (the paper fine-tunes a COCO RetinaNet)')

    def _log(self, writer, step: int, losses: dict, images_per_second: float) -> None:
        learning_rate = float(self.schedule(step))
        with writer.as_default(step=step):
            for name in ('total_loss', 'class_loss', 'box_loss', 'weight_decay',
                         'num_positives'):
                tf.summary.scalar(f'loss/{name}' if 'loss' in name else name, losses[name])
            tf.summary.scalar('learning_rate', learning_rate)
            tf.summary.scalar('images_per_second', images_per_second)
        remaining = (self.total_steps - step) * self.config.batch_size / max(images_per_second,
                                                                             1e-9)
        print(f'step {step}/{self.total_steps}  loss {losses["total_loss"]:.4f} '
              f'(class {losses["class_loss"]:.4f}, box {losses["box_loss"]:.4f})  '
              f'lr {learning_rate:.2e}  {images_per_second:.1f} img/s  '
              f'eta {remaining / 60:.1f} min', flush=True)

    def validate(self) -> dict[str, float]:
        """Detection AP / recall on the validation split; logs them and pictures."""
        config = self.config
        if not config.validation:
            return {}
        name, split = datasets_lib.parse_split_spec(config.validation)
        dataset = datasets_lib.detection_eval_dataset(
            name, split, config.image_size, config.batch_size, data_dir=self.data_dir,
            manual_dir=self.manual_dir, resize_mode=config.resize_mode)
        detections = detection_split.detect_split(self._detect, dataset,
                                                  max_images=config.validation_images)
        result = detection_split.detection_metrics(detections)
        metrics = {'det_ap': result.average_precision, 'det_recall': result.recall}
        writer = self.summary_writer(os.path.join(self.model_dir, 'validation'))
        with writer.as_default(step=self.step):
            tf.summary.scalar('detection/ap', metrics['det_ap'])
            tf.summary.scalar('detection/recall', metrics['det_recall'])
            pictures = [np.asarray(visualization.draw_annotations(
                image, boxes[:, [1, 0, 3, 2]], scores=scores))
                for image, boxes, scores in detections.samples]
            if pictures:
                tf.summary.image('detections', np.stack(pictures), max_outputs=len(pictures))
        print(f'validation {config.validation} at step {self.step}: detection AP '
              f'{metrics["det_ap"]:.4f}, recall {metrics["det_recall"]:.4f} '
              f'({len(detections.gallery.names)} images)', flush=True)
        return metrics


def train_detector(config: DetectionConfig, model_dir: str, data_dir: str | None = None,
                   manual_dir=None, strategy: tf.distribute.Strategy | None = None
                   ) -> dict[str, float]:
    """Stage 1 end to end; see `DetectionTrainer`."""
    return DetectionTrainer(config, model_dir, data_dir, manual_dir, strategy).train()
