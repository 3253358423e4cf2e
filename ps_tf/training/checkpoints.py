"""When the training loops save: on multiples of their checkpoint period and at the end; and
where, when several workers train together (`RunCheckpoints`: the chief into the run, the others
into throwaway directories).

`tf.train.CheckpointManager(checkpoint_interval=N)` is not used for this: it saves at its first
`save()` call after every (re)start and then every N steps from there, so a run resumed at step
37 with N = 50 writes ckpt-38, ckpt-88, ... instead of ckpt-50, ckpt-100, ...
"""

from __future__ import annotations

import os
import shutil
import tempfile

import tensorflow as tf


def save_checkpoint(manager: tf.train.CheckpointManager, step: int, every: int,
                    final: bool = False) -> str | None:
    """Saves `<prefix>-<step>` when `step` is a multiple of `every` (> 0) or when `final` (the
    end of training); a step that is saved already is not saved twice.

    Args:
        manager: a CheckpointManager without `checkpoint_interval`.
        step: the training steps done.
        every: the checkpoint period in steps; 0 or less = only `final`.
        final: the last step of the run.

    Returns:
        The checkpoint's path (also when it existed already), or None when nothing was saved.
    """
    step = int(step)
    if not final and (every <= 0 or step % every):
        return None
    latest = manager.latest_checkpoint
    if latest and latest.rsplit('-', 1)[-1] == str(step):
        return latest
    return manager.save(checkpoint_number=step)


class RunCheckpoints:
    """A training loop's checkpoints under TensorFlow's multi-worker rule.

    Saving is a collective under a multi-worker strategy (reading batch norm's moving statistics
    sums them over the replicas), so every worker saves at the same steps: the chief into
    `directory`, every other worker into a throwaway directory of its own (under the system's
    temporary directory), deleted after each save. Every worker resumes from the chief's
    `directory`, so all must see it (a shared filesystem).

    Args:
        checkpoint: the `tf.train.Checkpoint` to save.
        directory: the run's checkpoint directory (the chief's).
        chief: whether this process is the chief (`distribution.is_chief`).
        max_to_keep: checkpoints kept in `directory`.
    """

    def __init__(self, checkpoint: tf.train.Checkpoint, directory: str, chief: bool = True,
                 max_to_keep: int = 3):
        self.directory = directory
        self.chief = chief
        # A fresh name that does not exist yet: the first save creates it, each save deletes it.
        self.write_directory = directory if chief else _unused_temporary_path()
        self.manager = tf.train.CheckpointManager(checkpoint, self.write_directory,
                                                  max_to_keep=max_to_keep)

    @property
    def latest(self) -> str | None:
        """The chief's latest checkpoint (what every worker resumes from)."""
        return tf.train.latest_checkpoint(self.directory)

    def save(self, step: int, every: int, final: bool = False) -> str | None:
        """`save_checkpoint` into this worker's directory; a non-chief's is deleted again.

        Returns:
            The checkpoint's path in the chief's directory, or None when nothing was saved.
        """
        path = save_checkpoint(self.manager, step, every, final)
        if path is None or self.chief:
            return path
        shutil.rmtree(self.write_directory, ignore_errors=True)
        return os.path.join(self.directory, os.path.basename(path))


def _unused_temporary_path() -> str:
    path = tempfile.mkdtemp(prefix='ps_tf_worker_checkpoints_')
    os.rmdir(path)
    return path
