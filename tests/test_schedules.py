"""The linear-cosine schedule against TensorFlow's own compat implementation."""

import numpy as np
import pytest
import tensorflow as tf

from ps_tf.schedules import LinearCosineDecayWithWarmup


def _compat(base, step, decay_steps, **kwargs):
    return float(tf.compat.v1.train.linear_cosine_decay(base, step, decay_steps, **kwargs)())


@pytest.mark.parametrize('kwargs', [{}, {'num_periods': 2.0, 'alpha': 0.1, 'beta': 0.01}])
def test_without_warmup_equals_compat_linear_cosine_decay(kwargs):
    schedule = LinearCosineDecayWithWarmup(1e-3, decay_steps=1000, **kwargs)
    for step in [0, 1, 250, 500, 999, 1000, 1500]:
        np.testing.assert_allclose(float(schedule(step)), _compat(1e-3, step, 1000, **kwargs),
                                   rtol=1e-5)


def test_warmup_ramps_linearly_then_follows_compat_decay():
    schedule = LinearCosineDecayWithWarmup(1e-3, decay_steps=1000, warmup_steps=100,
                                           warmup_start=1e-5)
    at_end = _compat(1e-3, 100, 1000)
    np.testing.assert_allclose(float(schedule(0)), 1e-5, rtol=1e-5)
    np.testing.assert_allclose(float(schedule(50)), 1e-5 + 0.5 * (at_end - 1e-5), rtol=1e-5)
    values = [float(schedule(s)) for s in range(0, 101, 10)]
    assert all(a < b for a, b in zip(values, values[1:]))
    for step in [100, 400, 1000]:
        np.testing.assert_allclose(float(schedule(step)), _compat(1e-3, step, 1000), rtol=1e-5)


def test_config_round_trip_and_use_in_an_optimizer():
    schedule = LinearCosineDecayWithWarmup(0.01, decay_steps=50, warmup_steps=5,
                                           warmup_start=0.002)
    clone = LinearCosineDecayWithWarmup.from_config(schedule.get_config())
    assert float(clone(17)) == float(schedule(17))
    optimizer = tf.keras.optimizers.SGD(learning_rate=schedule, momentum=0.9)
    variable = tf.Variable(1.0)
    optimizer.apply_gradients([(tf.constant(1.0), variable)])
    np.testing.assert_allclose(variable.numpy(), 1.0 - float(schedule(0)), rtol=1e-6)


@pytest.mark.parametrize('decay_steps, warmup_steps', [(0, 0), (10, 11), (10, -1)])
def test_invalid_steps_are_refused(decay_steps, warmup_steps):
    with pytest.raises(ValueError):
        LinearCosineDecayWithWarmup(0.1, decay_steps=decay_steps, warmup_steps=warmup_steps)


def test_phased_schedule_restarts_each_phase():
    from ps_tf.schedules import PhasedSchedule
    first = LinearCosineDecayWithWarmup(1e-3, decay_steps=100, warmup_steps=10)
    second = LinearCosineDecayWithWarmup(2e-4, decay_steps=50)
    schedule = PhasedSchedule([first, second], [100])
    for step in (0, 5, 10, 60, 99):
        assert float(schedule(step)) == pytest.approx(float(first(step)))
    for step in (100, 120, 149, 400):
        assert float(schedule(step)) == pytest.approx(float(second(step - 100)))
    assert float(schedule(100)) == pytest.approx(2e-4 * 1.001)   # restarted at its peak
    with pytest.raises(ValueError, match='boundaries'):
        PhasedSchedule([first, second], [])
