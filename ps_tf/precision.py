"""Compute precision: which Keras dtype policy a `mixed_precision` setting means on this machine.

Every stage (pretraining, detection, pooling, re-ID, inference) takes a setting 'float32',
'bfloat16', 'float16' or 'auto'. 'auto' picks what the hardware computes fast:

- a GPU of compute capability 8.0 or more (A100, H100, RTX 30xx and later): bfloat16, which
  needs no loss scaling (same exponent range as float32);
- an older GPU (V100, T4, and the paper's Titan X class): float16, with dynamic loss scaling
  (`LossScaleOptimizer`), because float16 gradients underflow without it;
- no GPU, and a CPU with bfloat16 units (AVX-512 BF16 or AMX), where oneDNN runs a bfloat16
  ResNet several times faster than float32: bfloat16;
- otherwise float32 (bfloat16 and float16 are emulated on such CPUs and slower).

Variables stay float32 in every policy, so a checkpoint's weights restore in any precision.
The training loops call `scaled_loss` and `unscaled_gradients` around the gradient: both do
nothing unless the optimizer is a `LossScaleOptimizer` (float16).
"""

from __future__ import annotations

import tensorflow as tf

MIXED_PRECISION_POLICIES = {'float32': 'float32', 'bfloat16': 'mixed_bfloat16',
                            'float16': 'mixed_float16'}


def cpu_has_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX)."""
    try:
        with open('/proc/cpuinfo') as f:
            flags = f.read()
    except OSError:
        return False
    return ' avx512_bf16' in flags or ' amx_bf16' in flags


def gpu_compute_capabilities() -> list[tuple[int, int]]:
    """The CUDA compute capability of each visible GPU ((0, 0) where TensorFlow cannot tell)."""
    capabilities = []
    for gpu in tf.config.list_physical_devices('GPU'):
        details = tf.config.experimental.get_device_details(gpu)
        capabilities.append(tuple(details.get('compute_capability') or (0, 0)))
    return capabilities


def auto_precision(gpu_capabilities: list[tuple[int, int]], cpu_bfloat16: bool) -> str:
    """What 'auto' means for these devices (see the module docstring); the slowest GPU decides."""
    if gpu_capabilities:
        return 'bfloat16' if min(gpu_capabilities) >= (8, 0) else 'float16'
    return 'bfloat16' if cpu_bfloat16 else 'float32'


def resolve_mixed_precision(setting: str) -> str:
    """'auto' -> the precision this machine computes fastest (`auto_precision`); other
    settings are returned as they are (and checked).

    Raises:
        ValueError: an unknown setting.
    """
    if setting == 'auto':
        return auto_precision(gpu_compute_capabilities(), cpu_has_bfloat16())
    if setting not in MIXED_PRECISION_POLICIES:
        raise ValueError(f"mixed_precision must be 'auto' or one of "
                         f'{sorted(MIXED_PRECISION_POLICIES)}, got {setting!r}')
    return setting


def keras_policy(setting: str) -> str:
    """The Keras dtype policy name of a setting ('auto' resolved for this machine)."""
    return MIXED_PRECISION_POLICIES[resolve_mixed_precision(setting)]


def training_optimizer(optimizer: tf.keras.optimizers.Optimizer, setting: str
                       ) -> tf.keras.optimizers.Optimizer:
    """`optimizer`, wrapped in Keras' dynamic `LossScaleOptimizer` when `setting` resolves to
    float16 (other precisions need no loss scaling)."""
    if resolve_mixed_precision(setting) == 'float16':
        return tf.keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer


def computes_in_float16(*models: tf.Module) -> bool:
    """Whether any layer of `models` computes in float16 (a model restored in the precision it
    was trained in, as joint fine-tuning does)."""
    return any(getattr(getattr(layer, 'dtype_policy', None), 'compute_dtype', None) == 'float16'
               for model in models for layer in (model, *model.submodules))


def is_loss_scaled(optimizer) -> bool:
    """Whether `optimizer` scales the loss (float16)."""
    return isinstance(optimizer, tf.keras.mixed_precision.LossScaleOptimizer)


def scaled_loss(optimizer, loss: tf.Tensor) -> tf.Tensor:
    """The loss to differentiate: multiplied by the loss scale under float16, else `loss`."""
    return optimizer.get_scaled_loss(loss) if is_loss_scaled(optimizer) else loss


def unscaled_gradients(optimizer, gradients: list) -> list:
    """Gradients of `scaled_loss`, divided back by the loss scale under float16. A step whose
    scaled gradients overflowed is skipped by the `LossScaleOptimizer` itself (it lowers the
    scale and applies nothing), so the training loops' own non-finite checks look only at the
    loss under float16."""
    return optimizer.get_unscaled_gradients(gradients) if is_loss_scaled(optimizer) \
        else gradients
