"""A stage-1 run directory for the stage-2 tests: config.json and an untrained checkpoint."""

import dataclasses
import os

import tensorflow as tf

from ps_tf import config as config_lib
from ps_tf.models import factory


def make_stage1_run(model_dir: str, variant: str = 'J4', image_size: int = 64) -> str:
    """Writes the run (synthetic preset, `variant`, `image_size`); returns the checkpoint."""
    config = dataclasses.replace(config_lib.PRESETS['synthetic'], variant=variant, weights='none',
                                 image_size=image_size)
    config_lib.save_config(config, model_dir)
    model = factory.build_model(config)
    model(tf.zeros([1, image_size, image_size, 3]), training=False)
    return tf.train.Checkpoint(model=model).save(os.path.join(model_dir, 'checkpoints', 'ckpt'))
