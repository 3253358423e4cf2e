"""Compute precision: which Keras dtype policy a `mixed_precision` setting means on this machine.

Every stage (pretraining, detection, pooling, re-ID, inference) takes a setting 'float32',
'bfloat16' or 'auto'. 'auto' is bfloat16 only on a CPU-only machine whose CPU has bfloat16
units (AVX-512 BF16 or AMX), where oneDNN runs a bfloat16 ResNet several times faster than
float32; elsewhere bfloat16 is emulated and slower, so 'auto' means float32 there. Variables
stay float32 in every policy, so a checkpoint restores in any precision.
"""

from __future__ import annotations

import tensorflow as tf

MIXED_PRECISION_POLICIES = {'float32': 'float32', 'bfloat16': 'mixed_bfloat16'}


def cpu_has_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX)."""
    try:
        with open('/proc/cpuinfo') as f:
            flags = f.read()
    except OSError:
        return False
    return ' avx512_bf16' in flags or ' amx_bf16' in flags


def resolve_mixed_precision(setting: str) -> str:
    """'auto' -> 'bfloat16' on a machine without GPUs whose CPU has bfloat16 units, else
    'float32'; other settings are returned as they are (and checked).

    Raises:
        ValueError: an unknown setting.
    """
    if setting == 'auto':
        on_cpu = not tf.config.list_physical_devices('GPU')
        return 'bfloat16' if on_cpu and cpu_has_bfloat16() else 'float32'
    if setting not in MIXED_PRECISION_POLICIES:
        raise ValueError(f"mixed_precision must be 'auto' or one of "
                         f'{sorted(MIXED_PRECISION_POLICIES)}, got {setting!r}')
    return setting


def keras_policy(setting: str) -> str:
    """The Keras dtype policy name of a setting ('auto' resolved for this machine)."""
    return MIXED_PRECISION_POLICIES[resolve_mixed_precision(setting)]
