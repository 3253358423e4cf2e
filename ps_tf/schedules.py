"""Learning-rate schedule of both training stages: linear-cosine decay with a linear warm-up.

Linear-cosine decay is the schedule of `tf.compat.v1.train.linear_cosine_decay` (Bello et al.,
"Neural Optimizer Search with Reinforcement Learning", 2017), which Keras 2 no longer exports.
With t = min(step, decay_steps):

    lr(t) = base * ((alpha + (D - t) / D) * 0.5 * (1 + cos(2 pi num_periods t / D)) + beta)

The warm-up, as in the Model Garden's `LinearWarmup`, ramps linearly from `warmup_start` to the
decayed value at `warmup_steps`; the decay itself runs on the global step, so after the warm-up the
schedule equals the compat function exactly.
"""

from __future__ import annotations

import math

import tensorflow as tf


class LinearCosineDecayWithWarmup(tf.keras.optimizers.schedules.LearningRateSchedule):
    """Linear-cosine decay over `decay_steps` steps, preceded by a linear warm-up.

    Args:
        base_learning_rate: the peak learning rate.
        decay_steps: D, the number of steps over which to decay (normally the run's length).
        warmup_steps: steps of linear warm-up (0 for none).
        warmup_start: learning rate at step 0 of the warm-up.
        num_periods, alpha, beta: as in `tf.compat.v1.train.linear_cosine_decay`.
    """

    def __init__(self, base_learning_rate: float, decay_steps: int, warmup_steps: int = 0,
                 warmup_start: float = 0.0, num_periods: float = 0.5, alpha: float = 0.0,
                 beta: float = 0.001, name: str = 'LinearCosineDecayWithWarmup'):
        super().__init__()
        if decay_steps <= 0:
            raise ValueError(f'decay_steps must be positive, got {decay_steps}')
        if not 0 <= warmup_steps <= decay_steps:
            raise ValueError(f'warmup_steps must be in [0, decay_steps={decay_steps}], '
                             f'got {warmup_steps}')
        self.base_learning_rate = base_learning_rate
        self.decay_steps = decay_steps
        self.warmup_steps = warmup_steps
        self.warmup_start = warmup_start
        self.num_periods = num_periods
        self.alpha = alpha
        self.beta = beta
        self.name = name

    def _decayed(self, step: tf.Tensor) -> tf.Tensor:
        decay_steps = tf.cast(self.decay_steps, tf.float32)
        t = tf.minimum(step, decay_steps)
        linear = (decay_steps - t) / decay_steps
        cosine = 0.5 * (1.0 + tf.cos(2.0 * math.pi * self.num_periods * t / decay_steps))
        return self.base_learning_rate * ((self.alpha + linear) * cosine + self.beta)

    def __call__(self, step) -> tf.Tensor:
        with tf.name_scope(self.name):
            step = tf.cast(step, tf.float32)
            decayed = self._decayed(step)
            if self.warmup_steps == 0:
                return decayed
            warmup_steps = tf.cast(self.warmup_steps, tf.float32)
            at_warmup_end = self._decayed(warmup_steps)
            warming = self.warmup_start + (at_warmup_end - self.warmup_start) * (
                step / warmup_steps)
            return tf.where(step < warmup_steps, warming, decayed)

    def get_config(self) -> dict:
        return {
            'base_learning_rate': self.base_learning_rate,
            'decay_steps': self.decay_steps,
            'warmup_steps': self.warmup_steps,
            'warmup_start': self.warmup_start,
            'num_periods': self.num_periods,
            'alpha': self.alpha,
            'beta': self.beta,
            'name': self.name,
        }


class PhasedSchedule(tf.keras.optimizers.schedules.LearningRateSchedule):
    """Consecutive schedules, each restarted from its own step 0: `schedules[i]` runs for
    `boundaries[i] - boundaries[i - 1]` steps (stage 2: one linear-cosine decay per triplet phase,
    so that the batch-hard phase does not start where one long decay has already died out).

    Args:
        schedules: one schedule per phase.
        boundaries: the global steps where phases 2, 3, ... begin (len(schedules) - 1 values).
    """

    def __init__(self, schedules, boundaries, name: str = 'PhasedSchedule'):
        super().__init__()
        if len(boundaries) != len(schedules) - 1 or list(boundaries) != sorted(boundaries):
            raise ValueError(f'{len(schedules)} schedules need {len(schedules) - 1} increasing '
                             f'boundaries, got {list(boundaries)}')
        self.schedules = list(schedules)
        self.boundaries = [int(b) for b in boundaries]
        self.name = name

    def __call__(self, step) -> tf.Tensor:
        with tf.name_scope(self.name):
            step = tf.cast(step, tf.float32)
            rate = self.schedules[0](step)
            for start, schedule in zip(self.boundaries, self.schedules[1:]):
                rate = tf.where(step < start, rate, schedule(tf.maximum(step - start, 0.0)))
            return rate

    def get_config(self) -> dict:
        return {'schedules': [tf.keras.optimizers.schedules.serialize(s) for s in self.schedules],
                'boundaries': self.boundaries, 'name': self.name}
