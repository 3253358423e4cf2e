"""What the training loops share: stage 1 (`detection.DetectionTrainer`), stage 2
(`reid.ReidTrainer`) and the joint fine-tuning (`joint_finetune.JointTrainer`).

Each loop counts its steps with its optimizer's iterations (saved in its checkpoint, so a resumed
run continues at the right step and learning rate), resumes from its `CheckpointManager`'s
latest checkpoint, and the two that make a searchable model score it the same way.
"""

from __future__ import annotations

import os

import tensorflow as tf
from absl import logging

from ps_tf.evaluation.inference import search_metrics
from ps_tf.precision import is_loss_scaled


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
    """Base of the training loops: the step counter and resuming.

    A subclass's `__init__` sets `optimizer`, `checkpoint` (a `tf.train.Checkpoint` holding the
    optimizer and the trained variables) and `manager` (its `tf.train.CheckpointManager`), and
    names itself in `description` for the log.
    """
    description = 'training'
    optimizer: tf.keras.optimizers.Optimizer
    checkpoint: tf.train.Checkpoint
    manager: tf.train.CheckpointManager

    @property
    def step(self) -> int:
        """Training steps done (the optimizer's iterations)."""
        return int(self.optimizer.iterations.numpy())

    def restore(self) -> int:
        """Resumes from the latest checkpoint, if any; returns the step reached."""
        latest = self.manager.latest_checkpoint
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
            logging.info('resumed %s from %s (step %d)', self.description, latest, self.step)
        return self.step


def validate_search(model, dataset: str, image_size: int, batch_size: int, data_dir, manual_dir,
                    output_dir: str, step: int, when: str,
                    resize_mode: str = 'letterbox') -> dict[str, float]:
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
    """
    metrics = search_metrics(model, dataset, image_size, batch_size, data_dir, manual_dir,
                             resize_mode)
    writer = tf.summary.create_file_writer(os.path.join(output_dir, 'validation'))
    with writer.as_default(step=step):
        for name, value in metrics.items():
            if name != 'gallery_size':
                tf.summary.scalar(f'search/{name}', value)
    gallery = f'gallery {metrics["gallery_size"]}, ' if metrics['gallery_size'] else ''
    print(f'validation {dataset} {when}: search mAP {metrics["mAP"]:.4f}, top-1 '
          f'{metrics["top1"]:.4f} ({gallery}detection AP {metrics["det_ap"]:.4f})', flush=True)
    return metrics
