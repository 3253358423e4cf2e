"""`save_checkpoint`: on multiples of the period and at the end, also after a restart."""

import os

import tensorflow as tf

from ps_tf.training.checkpoints import save_checkpoint


def _saved_steps(directory: str) -> list[int]:
    state = tf.train.get_checkpoint_state(directory)
    return [int(path.rsplit('-', 1)[1]) for path in state.all_model_checkpoint_paths]


def test_multiples_and_the_end_also_after_a_restart(tmp_path):
    directory = str(tmp_path / 'checkpoints')

    def run(start: int, end: int) -> list[str]:
        manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(0)), directory,
                                             max_to_keep=10)
        written = [save_checkpoint(manager, step, 3) for step in range(start + 1, end + 1)]
        return [path for path in written if path] + [save_checkpoint(manager, end, 3, True)]

    run(0, 7)
    assert _saved_steps(directory) == [3, 6, 7]
    last = run(7, 12)             # resumed at 7: 9 and 12, not 8 and 11
    assert _saved_steps(directory) == [3, 6, 7, 9, 12]
    assert last[-1] == last[-2] == os.path.join(directory, 'ckpt-12')   # 12 is saved once
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(0)), directory, 10)
    assert save_checkpoint(manager, 13, 0) is None and save_checkpoint(manager, 13, 0, True)
    assert _saved_steps(directory)[-1] == 13
