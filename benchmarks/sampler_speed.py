"""Stage-2 input: P x K sampler speed against a training step, bytes per box, sampler memory.

Issue #6 asks for three figures; this benchmark prints them on random pooled features written to a
temporary directory (real features compress no better: the records are not compressed):

1. Bytes per pooled box on disk (TFRecord shard + its index) for J2 (64x32x256), J3 (32x16x512)
   and J4 (16x8x1024), in float16.
2. Sampler batches/s (P x K = 32 x 4 by default, J4 features, page cache warm) against a stage-2
   training step. The re-ID model does not exist yet, so the step is a clearly labelled STAND-IN:
   the ResNet-50 conv5 stage (`tf.keras.applications.ResNet50` layers, random weights) on the
   (P*K, 16, 8, 1024) batch, global average pooling, a 128-d embedding and TFA's
   `TripletSemiHardLoss`, one Adam update - J4's re-ID branch. `--step=none` skips it. The
   sampler must be >= 5x faster than the step.
   The same for the in-memory sampler (the whole set loaded once, batches gathered with TF
   ops), its ratio to the disk reader, and the rate a GPU step would need: the stand-in step's
   FLOPs (TF's graph profiler) at `--accelerator_tflops` of sustained throughput.
3. Peak memory of the sampler alone at two dataset sizes (each in a fresh subprocess: peak RSS
   during sampling minus the RSS before the pipeline is built); it must not grow with the dataset.

    python benchmarks/sampler_speed.py                       # all three
    python benchmarks/sampler_speed.py --step=none           # sampler speed only, no stand-in
    python benchmarks/sampler_speed.py --memory_identities=32,1024 --work_dir=/data/tmp
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import app
from absl import flags

from ps_tf.data import identity_sampler
from ps_tf.data.pooled import records as pooled_records
from ps_tf.data.pooled import manifest as pooled_manifest

flags.DEFINE_string('work_dir', None, 'Where to write the pooled features (default: a temporary '
                    'directory, removed at the end).')
flags.DEFINE_integer('identities_per_batch', 32, 'P.')
flags.DEFINE_integer('samples_per_identity', 4, 'K.')
flags.DEFINE_integer('speed_identities', 256, 'Identities of the speed dataset (J4).')
flags.DEFINE_integer('speed_records_per_identity', 6, 'Records per identity of the speed dataset.')
flags.DEFINE_integer('batches', 30, 'Sampler batches timed (after 3 warm-up batches).')
flags.DEFINE_integer('num_parallel_reads', 2, 'The sampler\'s num_parallel_reads.')
flags.DEFINE_float('accelerator_tflops', 400.0, 'Sustained TFLOP/s of the accelerator whose '
                   'needed input rate is printed (400: about 40 % of an H100 SXM\'s dense '
                   'bfloat16 peak).')
flags.DEFINE_enum('step', 'resnet_conv5', ['resnet_conv5', 'none'], 'The stand-in training step.')
flags.DEFINE_integer('steps', 3, 'Stand-in steps timed (after one warm-up step).')
flags.DEFINE_list('memory_identities', ['32', '256'], 'Identities (4 J4 records each) of the two '
                  'memory datasets; empty to skip.')
flags.DEFINE_string('memory_child', None, 'Internal: sample from this directory and print the '
                    'peak RSS growth.')
FLAGS = flags.FLAGS

# Pooled box shapes per variant (docs/architecture.md#re-id-branch).
POOLED_SHAPES = {'J2': (64, 32, 256), 'J3': (32, 16, 512), 'J4': (16, 8, 1024)}


def write_random(directory: str, variant: str, num_identities: int, records_per_identity: int,
                 num_shards: int = 4, seed: int = 0) -> pooled_manifest.PooledManifest:
    """Writes random float16 pooled features, identities interleaved over the shards."""
    rng = np.random.default_rng(seed)
    shape = POOLED_SHAPES[variant]
    identities = rng.permutation(np.repeat(np.arange(num_identities), records_per_identity))
    identity_map = pooled_manifest.IdentityMap(('bench', i) for i in range(num_identities))
    writer = pooled_records.ShardedWriter(directory, num_shards=num_shards,
                                          identity_map=identity_map, variant=variant,
                                          pooled_shape=shape, source_checkpoint='random')
    per_shard = -(-len(identities) // num_shards)
    for shard_index, chunk in enumerate(pooled_records.split_into_shards(identities, per_shard)):
        writer.write_shard(shard_index, (pooled_records.PooledBox(
            rng.standard_normal(shape, np.float32), int(person_id), 'bench',
            f'{shard_index}_{i}.jpg', np.array([10.0, 20.0, 60.0, 140.0]))
            for i, person_id in enumerate(chunk)))
    return writer.finalize()


def bytes_per_box(work_dir: str) -> dict[str, tuple[float, float]]:
    """(shard bytes, index bytes) per record for each variant."""
    result = {}
    for variant in POOLED_SHAPES:
        manifest = write_random(os.path.join(work_dir, f'bytes_{variant}'), variant, 8, 4, 2)
        sizes = [(tf.io.gfile.stat(os.path.join(manifest.directory, shard.file)).length,
                  tf.io.gfile.stat(os.path.join(manifest.directory, shard.index)).length)
                 for shard in manifest.shards]
        result[variant] = tuple(float(s) / manifest.num_records for s in np.sum(sizes, axis=0))
    return result


def sampler_batches_per_second(manifest: pooled_manifest.PooledManifest,
                               in_memory: bool = False) -> float:
    """Batches/s of the disk reader, or of the in-memory path as stage 2 runs it: record ids
    from `record_id_dataset`, features gathered from a variable in a tf.function."""
    p, k = FLAGS.identities_per_batch, FLAGS.samples_per_identity
    if in_memory:
        table = tf.Variable(identity_sampler.load_pooled_set(manifest)[0], trainable=False)
        gather = tf.function(lambda ids: identity_sampler.gather_features(table, ids))
        iterator = iter(identity_sampler.record_id_dataset(manifest, p, k, seed=0))
        next_batch = lambda: gather(next(iterator)[0])   # noqa: E731
    else:
        iterator = iter(identity_sampler.identity_balanced_dataset(
            manifest, p, k, seed=0, num_parallel_reads=FLAGS.num_parallel_reads))
        next_batch = lambda: next(iterator)[0]   # noqa: E731
    for _ in range(3):
        next_batch()
    start = time.perf_counter()
    for _ in range(FLAGS.batches):
        features = next_batch()
    features.numpy()
    return FLAGS.batches / (time.perf_counter() - start)


def stand_in_steps_per_second(batch_size: int) -> tuple[float, float]:
    """STAND-IN stage-2 step: ResNet-50 conv5 + GAP + 128-d embedding, semi-hard triplet, Adam."""
    import tensorflow_addons as tfa   # only the stand-in needs it

    base = tf.keras.applications.ResNet50(include_top=False, weights=None,
                                          input_shape=(256, 128, 3))
    conv5 = tf.keras.Model(base.get_layer('conv4_block6_out').output,
                           base.get_layer('conv5_block3_out').output)
    model = tf.keras.Sequential([conv5, tf.keras.layers.GlobalAveragePooling2D(),
                                 tf.keras.layers.Dense(128)])
    loss_fn = tfa.losses.TripletSemiHardLoss()
    optimizer = tf.keras.optimizers.Adam(1e-4)
    rng = np.random.default_rng(0)
    features = tf.constant(rng.standard_normal((batch_size,) + POOLED_SHAPES['J4'], np.float32))
    labels = tf.constant(np.repeat(np.arange(batch_size // FLAGS.samples_per_identity),
                                   FLAGS.samples_per_identity).astype(np.int32))

    @tf.function
    def step(features, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(features, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                      model.trainable_variables))
        return loss

    step(features, labels).numpy()
    start = time.perf_counter()
    for _ in range(FLAGS.steps):
        loss = step(features, labels)
    loss.numpy()
    return FLAGS.steps / (time.perf_counter() - start), graph_flops(step, features, labels)


def graph_flops(function, *args) -> float:
    """Floating-point operations of one call of a tf.function (TF's graph profiler)."""
    from tensorflow.python.profiler import model_analyzer, option_builder

    graph = function.get_concrete_function(*args).graph
    options = option_builder.ProfileOptionBuilder(
        option_builder.ProfileOptionBuilder.float_operation()).with_empty_output().build()
    return float(model_analyzer.profile(graph, options=options).total_float_ops)


def memory_child(directory: str) -> None:
    def rss_kib() -> int:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * resource.getpagesize() // 1024

    manifest = pooled_manifest.read_manifest(directory)
    baseline = rss_kib()
    dataset = identity_sampler.identity_balanced_dataset(
        manifest, FLAGS.identities_per_batch, FLAGS.samples_per_identity, seed=0,
        num_parallel_reads=FLAGS.num_parallel_reads)
    for _ in dataset.take(FLAGS.batches):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({'growth_mib': (peak - baseline) / 1024}))


def main(argv):
    del argv
    if FLAGS.memory_child:
        memory_child(FLAGS.memory_child)
        return
    work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix='sampler_speed_')
    p, k = FLAGS.identities_per_batch, FLAGS.samples_per_identity
    try:
        print('Bytes per pooled box on disk (float16; shard + index):')
        for variant, (shard, index) in bytes_per_box(work_dir).items():
            values = int(np.prod(POOLED_SHAPES[variant]))
            print(f'  {variant} {POOLED_SHAPES[variant]}: {shard:,.0f} B/box in the shard '
                  f'({shard / (2 * values):.4f} x the raw {2 * values:,} B) + {index:.0f} B of '
                  f'index')

        manifest = write_random(os.path.join(work_dir, 'speed'), 'J4', FLAGS.speed_identities,
                                FLAGS.speed_records_per_identity)
        batch_bytes = p * k * 2 * np.prod(POOLED_SHAPES['J4'])
        rate = sampler_batches_per_second(manifest)
        print(f'Sampler from disk, J4, P x K = {p} x {k}, {manifest.num_records} records: '
              f'{rate:.2f} batches/s ({rate * batch_bytes / 1e9:.2f} GB/s of float16 features)')
        memory_rate = sampler_batches_per_second(manifest, in_memory=True)
        print(f'Sampler in memory (ids + tf.gather from a variable, as stage 2), same batches: '
              f'{memory_rate:.2f} batches/s ({memory_rate * batch_bytes / 1e9:.2f} GB/s), '
              f'{memory_rate / rate:.1f}x the disk reader; on a GPU the gather reads device '
              f'memory (TB/s) instead of this host\'s')
        if FLAGS.step != 'none':
            steps, flops = stand_in_steps_per_second(p * k)
            print(f'STAND-IN step (ResNet-50 conv5 + embedding + semi-hard triplet + Adam on '
                  f'({p * k}, 16, 8, 1024)): {steps:.3f} steps/s here, {flops / 1e12:.3f} '
                  f'TFLOP per step')
            print(f'Ratio sampler / stand-in step: disk {rate / steps:.1f}x, memory '
                  f'{memory_rate / steps:.1f}x (required >= 5x): '
                  f'{"OK" if rate >= 5 * steps else "TOO SLOW"}')
            needed = FLAGS.accelerator_tflops * 1e12 / flops
            print(f'An accelerator sustaining {FLAGS.accelerator_tflops:.0f} TFLOP/s runs '
                  f'{needed:.0f} steps/s and needs {needed:.0f} batches/s '
                  f'({needed * batch_bytes / 1e9:.1f} GB/s): disk reader '
                  f'{rate / needed:.2f}x, in memory {memory_rate / needed:.2f}x of that')

        growth = {}
        for num_identities in [int(n) for n in FLAGS.memory_identities]:
            directory = os.path.join(work_dir, f'memory_{num_identities}')
            manifest = write_random(directory, 'J4', num_identities, 4)
            output = subprocess.run(
                [sys.executable, os.path.abspath(__file__), f'--memory_child={directory}',
                 f'--batches={FLAGS.batches}', f'--identities_per_batch={p}',
                 f'--samples_per_identity={k}', f'--num_parallel_reads={FLAGS.num_parallel_reads}'],
                check=True, capture_output=True, text=True).stdout
            growth[num_identities] = json.loads(output.strip().splitlines()[-1])['growth_mib']
            on_disk = manifest.num_records * 2 * np.prod(POOLED_SHAPES['J4']) / 2**20
            print(f'Sampler peak RSS growth, {manifest.num_records} J4 records ({on_disk:.0f} MiB '
                  f'on disk, {2 * on_disk:.0f} MiB as float32): {growth[num_identities]:.0f} MiB')
        if len(growth) == 2:
            small, large = growth.values()
            print(f'Memory growth difference, large - small dataset: {large - small:+.0f} MiB')
    finally:
        if not FLAGS.work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == '__main__':
    app.run(main)
