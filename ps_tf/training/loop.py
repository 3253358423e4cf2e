"""What the training loops share: stage 1 (`detection.DetectionTrainer`), stage 2
(`reid.ReidTrainer`) and the joint fine-tuning (`joint_finetune.JointTrainer`).

Each loop counts its steps with its optimizer's iterations (saved in its checkpoint, so a resumed
run continues at the right step and learning rate), resumes from the run's latest checkpoint
(the chief's, on every worker of a multi-worker run), leaves the run's files to the chief
(`ps_tf.training.distribution`), and the two that make a searchable model score it the same way.
"""

from __future__ import annotations

import os

import tensorflow as tf
from absl import logging

from ps_tf.evaluation.inference import search_metrics
from ps_tf.precision import is_loss_scaled
from ps_tf.training import distribution
from ps_tf.training.checkpoints import RunCheckpoints


def guard_non_finite(loss: tf.Tensor, gradients: list, optimizer) -> tuple[list, tf.Tensor]:
    """(gradients, finite): the gradients, replaced by zeros when the step is not finite, so no
    NaN reaches the weights (the host then stops the run without saving, keeping the last good
    checkpoint). Finite means a finite `loss` and, unless the optimizer scales the loss (float16:
    it skips overflowing steps itself and lowers the scale), finite gradients."""
    finite = tf.math.is_finite(loss)
    if not is_loss_scaled(optimizer):
        for g in gradients:
            if g is not None:
                finite = finite & tf.reduce_all(tf.math.is_finite(g))
    return [None if g is None else tf.where(finite, g, tf.zeros_like(g)) for g in gradients], finite


class CheckpointedLoop:
    """Base of the training loops: the step counter, checkpoints, resuming and what only the
    chief writes.

    A subclass's `__init__` sets `strategy` and `optimizer`, then calls `_track_checkpoints`
    with its `tf.train.Checkpoint` (the optimizer and the trained variables), and names itself
    in `description` for the log.
    """
    description = 'training'
    strategy: tf.distribute.Strategy
    optimizer: tf.keras.optimizers.Optimizer
    checkpoint: tf.train.Checkpoint
    checkpoints: RunCheckpoints
    manager: tf.train.CheckpointManager   # this worker's (the chief's: the run's)

    def _track_checkpoints(self, checkpoint: tf.train.Checkpoint, directory: str) -> None:
        """Saves `checkpoint` in `directory` (the chief) or a throwaway one (other workers)."""
        self.checkpoint = checkpoint
        self.checkpoints = RunCheckpoints(checkpoint, directory, self.is_chief)
        self.manager = self.checkpoints.manager

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the run's files (`distribution.is_chief`)."""
        return distribution.is_chief(self.strategy)

    @property
    def step(self) -> int:
        """Training steps done (the optimizer's iterations)."""
        return int(self.optimizer.iterations.numpy())

    @property
    def latest_checkpoint(self) -> str | None:
        """The run's latest checkpoint (the chief's, for every worker)."""
        return self.checkpoints.latest

    def save(self, step: int, every: int, final: bool = False) -> str | None:
        """Saves on multiples of `every` and at the end (`RunCheckpoints.save`)."""
        return self.checkpoints.save(step, every, final)

    def restore(self) -> int:
        """Resumes from the latest checkpoint, if any; returns the step reached.

        Raises:
            ValueError: the workers of a multi-worker run resumed at different steps.
        """
        latest = self.latest_checkpoint
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
            logging.info('resumed %s from %s (step %d)', self.description, latest, self.step)
        steps = distribution.values_of_workers(self.strategy, self.step)
        if min(steps) != max(steps):
            raise ValueError(f'{self.description}: the workers resumed at steps {steps}: every '
                             f'worker must read the chief\'s checkpoints in '
                             f'{self.checkpoints.directory} (a filesystem they all share)')
        return self.step

    def summary_writer(self, directory: str) -> tf.summary.SummaryWriter:
        """A TensorBoard writer into `directory` on the chief; one that writes nothing on the
        other workers."""
        if self.is_chief:
            return tf.summary.create_file_writer(directory)
        return tf.summary.create_noop_writer()


def validate_search(model, dataset: str, image_size: int, batch_size: int, data_dir, manual_dir,
                    output_dir: str, step: int, when: str,
                    resize_mode: str = 'letterbox', write: bool = True) -> dict[str, float]:
    """Search mAP / top-1 (and detection AP) of a joint model on `dataset`'s test split, written
    to TensorBoard (`<output_dir>/validation`, `search/*`) and printed.

    Args:
        model: the model to score (`PersonSearchModel`).
        dataset: a TFDS name with `gallery` and `query` splits.
        image_size, batch_size: the detector's input side; images per forward pass.
        data_dir, manual_dir: see `ps_tf.data.datasets.get_builder`.
        output_dir: the loop's output directory.
        step: the step the metrics are logged at.
        when: how the printed line names the moment, e.g. 'at step 400'.
        resize_mode: the detector's 'letterbox' or 'stretch' (`resize_and_pad`).
        write: write the TensorBoard summaries (the chief of a multi-worker run does; every
            worker computes the metrics).
    """
    metrics = search_metrics(model, dataset, image_size, batch_size, data_dir, manual_dir,
                             resize_mode)
    writer = (tf.summary.create_file_writer(os.path.join(output_dir, 'validation')) if write
              else tf.summary.create_noop_writer())
    with writer.as_default(step=step):
        for name, value in metrics.items():
            if name != 'gallery_size':
                tf.summary.scalar(f'search/{name}', value)
    gallery = f'gallery {metrics["gallery_size"]}, ' if metrics['gallery_size'] else ''
    print(f'validation {dataset} {when}: search mAP {metrics["mAP"]:.4f}, top-1 '
          f'{metrics["top1"]:.4f} ({gallery}detection AP {metrics["det_ap"]:.4f})', flush=True)
    return metrics
