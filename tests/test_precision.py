"""ps_tf.precision: what each mixed-precision setting resolves to."""

import pytest
import tensorflow as tf

from ps_tf import precision


def test_mixed_precision_setting(monkeypatch):
    assert precision.resolve_mixed_precision('float32') == 'float32'
    assert precision.resolve_mixed_precision('bfloat16') == 'bfloat16'
    monkeypatch.setattr(precision, 'cpu_has_bfloat16', lambda: True)
    assert precision.resolve_mixed_precision('auto') == (
        'float32' if tf.config.list_physical_devices('GPU') else 'bfloat16')
    assert precision.keras_policy('auto') == (
        'float32' if tf.config.list_physical_devices('GPU') else 'mixed_bfloat16')
    monkeypatch.setattr(precision, 'cpu_has_bfloat16', lambda: False)
    assert precision.resolve_mixed_precision('auto') == 'float32'
    assert precision.keras_policy('auto') == 'float32'
    with pytest.raises(ValueError, match='mixed_precision'):
        precision.resolve_mixed_precision('float16x')
