"""When the training loops save: on multiples of their checkpoint period and at the end.

`tf.train.CheckpointManager(checkpoint_interval=N)` is not used for this: it saves at its first
`save()` call after every (re)start and then every N steps from there, so a run resumed at step
37 with N = 50 writes ckpt-38, ckpt-88, ... instead of ckpt-50, ckpt-100, ...
"""

from __future__ import annotations

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
