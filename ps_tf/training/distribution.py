"""The distribution strategies `train.py --strategy` builds, and what the training loops need to
run under several replicas and several workers the way they run on one device.

Strategies (`build_strategy`):
- `auto`: each stage's own default, as before this flag existed: stage 1 a `MirroredStrategy`
  over the machine's devices, stage 2 and the joint fine-tuning the default (one device);
  `--num_cpu_devices=N` makes it `mirrored` over N logical CPUs;
- `mirrored`: `MirroredStrategy` over the machine's GPUs (else its CPU, or N logical CPUs);
- `one_device`: `OneDeviceStrategy` on the first GPU, else the CPU;
- `multi_worker`: `MultiWorkerMirroredStrategy` over the workers that the `TF_CONFIG`
  environment variable lists (collective all-reduce: NCCL between GPUs, gRPC ring on CPUs;
  TensorFlow picks with `CommunicationImplementation.AUTO`). It must exist before any other
  TensorFlow op runs: it starts this process's gRPC server.

One global batch, whatever the replicas (`distribute_global_batches`): every input pipeline
builds the same seeded sequence of global batches and keeps its own replicas' slices of each
(replica r of R gets rows [r B/R, (r+1) B/R)), so R replicas on W workers see exactly the
batches one device sees. The price: each worker reads and prepares the whole global batch (W x
the input work; stage 2's in-memory reader only draws record ids, the random-access reader and
stage 1 decode everything).

Across replicas the losses are those of the global batch: stage 1 divides its sums by the
global number of positives (`sum_over_replicas`), stage 2 and the joint fine-tuning mine
triplets over the gathered P x K batch (`gather_replicas`), and batch norm that trains
normalises with the global batch's statistics (`synchronize_batch_norm`). Each replica
differentiates its share of the global loss; the strategy sums the gradients.

Multi-worker rules (TensorFlow's): saving a checkpoint is a collective (batch norm's moving
statistics are summed over replicas when read), so every worker saves: the chief (worker 0, or
the `chief` task) into the run directory, the others into throwaway directories of their own
(`ps_tf.training.checkpoints.RunCheckpoints`); every worker resumes from the chief's latest
checkpoint (a filesystem all workers see); only the chief writes config.json, settings and
TensorBoard summaries; every worker runs the validation (it reads those statistics too).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Callable

import tensorflow as tf
from absl import logging

AUTO, MIRRORED, MULTI_WORKER, ONE_DEVICE = 'auto', 'mirrored', 'multi_worker', 'one_device'
STRATEGIES = (AUTO, MIRRORED, MULTI_WORKER, ONE_DEVICE)
TF_CONFIG = 'TF_CONFIG'
TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')


@dataclasses.dataclass(frozen=True)
class ClusterTask:
    """This process's place in the cluster `TF_CONFIG` describes.

    Attributes:
        jobs: job name ('chief', 'worker') -> the tasks' host:port addresses.
        task_type: this process's job.
        task_index: its index in that job.
    """
    jobs: dict[str, list[str]]
    task_type: str
    task_index: int

    @property
    def num_workers(self) -> int:
        return count_workers(self.jobs)

    @property
    def is_chief(self) -> bool:
        return is_chief_task(self.task_type, self.task_index, 'chief' in self.jobs)


def count_workers(jobs: dict[str, list[str]]) -> int:
    """The processes that train: the chief, if any, and the workers."""
    return sum(len(jobs.get(job, ())) for job in ('chief', 'worker'))


def is_chief_task(task_type: str | None, task_index: int | None, has_chief_job: bool) -> bool:
    """TensorFlow's rule: the `chief` task, or worker 0 when the cluster has no chief."""
    if task_type in (None, 'chief'):
        return True
    return task_type == 'worker' and task_index == 0 and not has_chief_job


def parse_tf_config(value: str | None) -> ClusterTask:
    """The cluster and task of a `TF_CONFIG` value, checked.

    Raises:
        ValueError: naming what is missing or wrong (not set, not JSON, no workers, an address
            that is not host:port, a task not in the cluster).
    """
    if not value:
        raise ValueError(f'--strategy=multi_worker reads the cluster from the {TF_CONFIG} '
                         f'environment variable, which is not set; each worker needs it, with '
                         f'its own task index, e.g. {TF_CONFIG}=\'{TF_CONFIG_EXAMPLE}\'')
    try:
        config = json.loads(value)
    except json.JSONDecodeError as error:
        raise ValueError(f'{TF_CONFIG} is not JSON ({error}): {value!r}') from error
    if not isinstance(config, dict) or not isinstance(config.get('cluster'), dict):
        raise ValueError(f'{TF_CONFIG} has no "cluster" object: {value!r}; expected e.g. '
                         f'{TF_CONFIG_EXAMPLE}')
    jobs = config['cluster']
    unknown = sorted(set(jobs) - {'chief', 'worker'})
    if unknown:
        raise ValueError(f'{TF_CONFIG}\'s cluster has jobs {unknown}: train.py runs only "chief" '
                         f'and "worker" tasks (no parameter servers or evaluators)')
    for job, addresses in jobs.items():
        if not isinstance(addresses, list) or not addresses:
            raise ValueError(f'{TF_CONFIG}\'s cluster job "{job}" must be a non-empty list of '
                             f'"host:port" addresses, got {addresses!r}')
        for address in addresses:
            host, _, port = str(address).rpartition(':')
            if not host or not port.isdigit():
                raise ValueError(f'{TF_CONFIG}\'s cluster job "{job}" holds {address!r}, not a '
                                 f'"host:port" address')
    if 'worker' not in jobs:
        raise ValueError(f'{TF_CONFIG}\'s cluster lists no "worker" job: {value!r}')
    task = config.get('task')
    if not isinstance(task, dict) or 'type' not in task or 'index' not in task:
        raise ValueError(f'{TF_CONFIG} has no "task": {{"type": ..., "index": ...}} naming this '
                         f'process: {value!r}')
    task_type, task_index = task['type'], task['index']
    if task_type not in jobs:
        raise ValueError(f'{TF_CONFIG}\'s task type {task_type!r} is not a job of its cluster '
                         f'({sorted(jobs)})')
    if not isinstance(task_index, int) or not 0 <= task_index < len(jobs[task_type]):
        raise ValueError(f'{TF_CONFIG}\'s task index {task_index!r} is not in [0, '
                         f'{len(jobs[task_type])}) for job "{task_type}"')
    return ClusterTask({job: list(addresses) for job, addresses in jobs.items()}, task_type,
                       task_index)


def split_cpu(num_devices: int) -> None:
    """Splits the CPU into `num_devices` logical devices (testing the multi-replica path
    without GPUs); must run before TensorFlow initialises its devices."""
    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)


def build_strategy(name: str, num_cpu_devices: int = 0,
                   environ=os.environ) -> tf.distribute.Strategy | None:
    """The strategy `name` (`STRATEGIES`) asks for; None for `auto` without logical CPUs (each
    stage then uses its default). Call it before any other TensorFlow op.

    Raises:
        ValueError: an unknown name, `num_cpu_devices` with a strategy that cannot use it, or a
            missing or malformed `TF_CONFIG` for `multi_worker`.
    """
    if name not in STRATEGIES:
        raise ValueError(f'strategy must be one of {STRATEGIES}, got {name!r}')
    if num_cpu_devices and name in (ONE_DEVICE, MULTI_WORKER):
        raise ValueError(f'--num_cpu_devices splits the CPU for the mirrored strategy; '
                         f'--strategy={name} uses one device per process')
    if name != MULTI_WORKER and environ.get(TF_CONFIG):
        logging.warning('%s is set, but --strategy=%s trains in this process alone '
                        '(--strategy=multi_worker trains with the cluster it lists)', TF_CONFIG,
                        name)
    if name == MULTI_WORKER:
        parse_tf_config(environ.get(TF_CONFIG))   # a clear error before TensorFlow's own
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.AUTO)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if num_cpu_devices:
        split_cpu(num_cpu_devices)
        return tf.distribute.MirroredStrategy(
            [device.name for device in tf.config.list_logical_devices('CPU')])
    if name == MIRRORED:
        return tf.distribute.MirroredStrategy()
    if name == ONE_DEVICE:
        gpus = tf.config.list_logical_devices('GPU')
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else '/cpu:0')
    return None


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether this process writes the run's files: always, unless it is a non-chief worker of a
    multi-worker strategy."""
    resolver = getattr(strategy, 'cluster_resolver', None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return is_chief_task(resolver.task_type, resolver.task_id,
                         'chief' in resolver.cluster_spec().jobs)


def num_workers(strategy: tf.distribute.Strategy | None) -> int:
    """The processes training together (1 unless multi-worker)."""
    resolver = getattr(strategy, 'cluster_resolver', None)
    if resolver is None:
        return 1
    return max(1, count_workers(resolver.cluster_spec().as_dict()))


def describe(strategy: tf.distribute.Strategy | None) -> str:
    """One line for the log: the strategy, its replicas and this worker's role."""
    if strategy is None:
        return 'each stage\'s default strategy'
    text = f'{type(strategy).__name__}, {strategy.num_replicas_in_sync} replica(s)'
    resolver = getattr(strategy, 'cluster_resolver', None)
    if num_workers(strategy) > 1:
        role = 'chief' if is_chief(strategy) else 'not the chief'
        text += (f' on {num_workers(strategy)} workers; this is {resolver.task_type} '
                 f'{resolver.task_id} ({role})')
    return text


def replica_slices(dataset: tf.data.Dataset, num_replicas: int, first_replica: int,
                   local_replicas: int) -> tf.data.Dataset:
    """Per-replica batches from a dataset of global batches: of each global batch (every
    tensor's leading dimension B, a multiple of `num_replicas`), the slices of replicas
    `first_replica` .. `first_replica + local_replicas - 1`, in that order, one element each.

    Raises:
        ValueError: a leading dimension that is unknown or not a multiple of the replicas.
    """
    if num_replicas == 1:
        return dataset

    def split(tensor: tf.Tensor) -> tf.Tensor:
        batch = tensor.shape[0]
        if batch is None or batch % num_replicas:
            raise ValueError(f'a global batch of {batch} cannot be split over {num_replicas} '
                             f'replicas (it must be a known multiple of them)')
        per_replica = tf.reshape(tensor, tf.concat(
            [[num_replicas, batch // num_replicas], tf.shape(tensor)[1:]], axis=0))
        return per_replica[first_replica:first_replica + local_replicas]

    def split_element(*element):
        return tf.nest.map_structure(split, element if len(element) > 1 else element[0])

    return dataset.map(split_element).unbatch()


def distribute_global_batches(strategy: tf.distribute.Strategy,
                              make_dataset: Callable[[], tf.data.Dataset]):
    """A distributed dataset in which replica r of each step gets its slice of the global batch
    `make_dataset()` yields (the module docstring says why every worker builds all of it)."""

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = context.num_replicas_in_sync // context.num_input_pipelines
        return replica_slices(make_dataset(), context.num_replicas_in_sync,
                              context.input_pipeline_id * local, local)

    return strategy.distribute_datasets_from_function(dataset_fn)


def _replica_context() -> tf.distribute.ReplicaContext | None:
    """The current replica context when it has more than one replica, else None."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def gather_replicas(tensor: tf.Tensor) -> tf.Tensor:
    """Every replica's `tensor` concatenated along axis 0 in replica order (itself on one
    replica). The gradient reaching a replica's own slice is the sum of every replica's gradient
    for it, so a loss L of the gathered batch, computed identically on R replicas, each
    differentiating L / R, gives the single-device gradient of L once the strategy sums them."""
    context = _replica_context()
    # tf.identity: a value placed on this replica's device (an input of the step is not, and a
    # multi-worker all-gather needs a device to gather to).
    return tensor if context is None else context.all_gather(tf.identity(tensor), axis=0)


def sum_over_replicas(tensor: tf.Tensor) -> tf.Tensor:
    """The sum of `tensor` over the replicas (itself on one replica)."""
    context = _replica_context()
    return tensor if context is None else context.all_reduce(tf.distribute.ReduceOp.SUM,
                                                             tf.identity(tensor))


def synchronize_batch_norm(model: tf.Module, strategy: tf.distribute.Strategy | None) -> int:
    """Makes every trainable, built batch norm of `model` normalise with the statistics of the
    global batch (Keras's `synchronized=True`, with `global_moments`) when `strategy` has
    several replicas; returns how many. Variables and names stay as they are, so checkpoints
    load either way; frozen layers (not trainable: inference mode, moving statistics) are left
    alone.

    Synchronised layers run Keras's unfused batch norm, whose moving variance is the batch's
    biased variance where the fused kernel's is unbiased (x n/(n-1)); the training losses are
    the same.
    """
    if strategy is None or strategy.num_replicas_in_sync == 1:
        return 0
    count = 0
    for layer in model.submodules:
        if isinstance(layer, tf.keras.layers.BatchNormalization) and layer.trainable:
            layer.synchronized = True
            layer.fused = False
            layer._sync_calculate_mean_and_var = functools.partial(global_moments, layer)
            count += 1
    return count


def global_moments(layer: tf.keras.layers.BatchNormalization, inputs: tf.Tensor,
                   reduction_axes, keep_dims: bool, mask=None) -> tuple[tf.Tensor, tf.Tensor]:
    """Mean and variance over every replica's batch, in two passes (the global mean, then the
    mean squared deviation from it), as `tf.nn.moments` and the fused kernel compute them.

    Keras 2.15's synchronised batch norm computes E[x^2] - E[x]^2 in one pass: in float32 that
    cancels catastrophically wherever a channel's mean is large against its spread, and made the
    gradients of two replicas differ from one device's by ~0.7 % (these: ~1e-5). A mask falls
    back to Keras's own.
    """
    context = tf.distribute.get_replica_context()
    if mask is not None or context is None:
        return type(layer)._sync_calculate_mean_and_var(layer, inputs, reduction_axes, keep_dims,
                                                        mask=mask)
    values = tf.cast(inputs, tf.float32) if inputs.dtype == tf.float16 else inputs
    local_sum = tf.reduce_sum(values, axis=reduction_axes, keepdims=True)
    local_count = tf.cast(tf.reduce_prod(tf.gather(tf.shape(values), reduction_axes)),
                          values.dtype)
    total_sum, count = context.all_reduce(tf.distribute.ReduceOp.SUM, [local_sum, local_count])
    mean = total_sum / count
    # No gradient through the mean here, as in tf.nn.moments: the deviations sum to zero.
    local_squares = tf.reduce_sum(tf.math.squared_difference(values, tf.stop_gradient(mean)),
                                  axis=reduction_axes, keepdims=True)
    variance = context.all_reduce(tf.distribute.ReduceOp.SUM, local_squares) / count
    if not keep_dims:
        mean = tf.squeeze(mean, reduction_axes)
        variance = tf.squeeze(variance, reduction_axes)
    return tf.cast(mean, inputs.dtype), tf.cast(variance, inputs.dtype)


def values_of_workers(strategy: tf.distribute.Strategy | None, value: int) -> list[int]:
    """`value` as every worker of a multi-worker strategy holds it, in worker order (a
    collective: every worker must call it); `[value]` otherwise. The workers check with it that
    they resumed at the same step, instead of hanging in mismatched collectives later."""
    if num_workers(strategy) == 1:
        return [value]
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda _: tf.constant([value], tf.int64))
    gathered = strategy.gather(per_replica, axis=0).numpy()
    local = strategy.num_replicas_in_sync // num_workers(strategy)
    return [int(v) for v in gathered[::local]]
