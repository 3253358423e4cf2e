"""Images/s of the stage-1 detection training pipeline alone (no model), on
`synthetic_person_search/default`, at image sizes 640 and 320.

Measures `ps_tf.data.datasets.detection_train_dataset` end to end (TFDS read, shuffle, mixing,
JPEG decode, flip, resize + pad, anchor targets, batching, prefetch) after a warm-up, against a
baseline run in the same process: TFDS read + JPEG decode only, the floor any pipeline pays. The
dataset is built in `--data_dir` first if it is not there (about a minute on a CPU).

    python benchmarks/detection_input_speed.py
    python benchmarks/detection_input_speed.py --num_images=2000 --batch_size=10 \\
        --dataset=synthetic_person_search/default --image_sizes=640,320
"""

from __future__ import annotations

import time

import tensorflow as tf
from absl import app
from absl import flags

from ps_tf.data import datasets
from ps_tf.data.decoder import decode_example

flags.DEFINE_string('dataset', 'synthetic_person_search/default', 'TFDS name (with config).')
flags.DEFINE_string('data_dir', None, 'TFDS data_dir (default: ~/tensorflow_datasets).')
flags.DEFINE_list('image_sizes', ['640', '320'], 'Square model input sizes to time.')
flags.DEFINE_integer('batch_size', 8, 'Images per batch.')
flags.DEFINE_integer('num_images', 320, 'Images timed per configuration (after warm-up).')
flags.DEFINE_integer('warmup_batches', 3, 'Batches drawn before timing (autotune, buffers).')
FLAGS = flags.FLAGS


def images_per_second(dataset: tf.data.Dataset, batch_size: int, num_images: int,
                      warmup_batches: int) -> float:
    """Draws `warmup_batches` batches, then times `num_images` images' worth of batches."""
    iterator = iter(dataset)
    for _ in range(warmup_batches):
        next(iterator)
    num_batches = max(1, num_images // batch_size)
    start = time.perf_counter()
    for _ in range(num_batches):
        tf.nest.map_structure(lambda t: t.numpy(), next(iterator))
    return num_batches * batch_size / (time.perf_counter() - start)


def decode_only_dataset(name: str, batch_size: int, data_dir: str | None) -> tf.data.Dataset:
    """Baseline: the same TFDS records read, shuffled and JPEG-decoded, nothing else."""
    dataset = datasets.load_split(name, 'train', data_dir, shuffle_files=True, try_autocache=True)
    dataset = dataset.shuffle(datasets.DEFAULT_SHUFFLE_BUFFER).repeat()
    dataset = dataset.map(lambda e: tf.reduce_sum(tf.cast(decode_example(e)['image'], tf.int32)),
                          num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def main(argv: list[str]) -> None:
    del argv
    datasets.get_builder(FLAGS.dataset, FLAGS.data_dir)        # builds it if needed
    batch, count, warmup = FLAGS.batch_size, FLAGS.num_images, FLAGS.warmup_batches
    baseline = images_per_second(decode_only_dataset(FLAGS.dataset, batch, FLAGS.data_dir),
                                 batch, count, warmup)
    print(f'{FLAGS.dataset}, batch {batch}, {count} images per figure')
    print(f'{"pipeline":<32}{"images/s":>10}{"vs decode only":>16}')
    print(f'{"read + JPEG decode only":<32}{baseline:>10.1f}{1.0:>15.2f}x')
    for size in (int(s) for s in FLAGS.image_sizes):
        dataset = datasets.detection_train_dataset(f'{FLAGS.dataset}:1', size, batch,
                                                   data_dir=FLAGS.data_dir)
        speed = images_per_second(dataset, batch, count, warmup)
        print(f'{f"train pipeline, {size}x{size}":<32}{speed:>10.1f}{speed / baseline:>15.2f}x')


if __name__ == '__main__':
    app.run(main)
