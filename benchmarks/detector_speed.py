"""Stage-1 detector speed: training and inference images/s against the bare backbone, and the
tf.data pipeline alone, all measured in one process.

For each input size (640, the paper's, and 320, the synthetic preset's) and batch size (1, 4):
- backbone: ResNet-50 forward pass (trunk + rest of the stages), the baseline of the ratios;
- inference: the whole detector with decoding and NMS (`RetinaNetDetector.detect`);
- training: one SGD step (forward, focal + smooth-L1 loss, backward, update) on random targets;
each a compiled `tf.function`, timed after a warm-up as the median of `--repeats` runs, in float32
and in mixed bfloat16. Then the training pipeline's images/s on `synthetic_person_search/default`
(no model, batch 8), which must exceed the training step's rate.

    python benchmarks/detector_speed.py                       # J3, sizes 640 and 320
    python benchmarks/detector_speed.py --variant=J2 --sizes=320 --batch_sizes=1,4 --repeats=5
"""

from __future__ import annotations

import statistics
import time

import tensorflow as tf
from absl import app, flags

import dataclasses

from ps_tf import config as config_lib
from ps_tf.data import datasets
from ps_tf.losses import detection_loss
from ps_tf.models import factory
from ps_tf.ops.anchors import anchors_per_level

flags.DEFINE_string('variant', 'J3', 'J2, J3 or J4.')
flags.DEFINE_list('sizes', ['640', '320'], 'Square input sizes.')
flags.DEFINE_list('batch_sizes', ['1', '4'], 'Batch sizes.')
flags.DEFINE_list('precisions', ['float32', 'bfloat16'],
                  'Compute precisions to time (see DetectionConfig.mixed_precision).')
flags.DEFINE_integer('repeats', 3, 'Timed runs per measurement (the median is reported).')
flags.DEFINE_string('data_dir', None, 'TFDS data_dir for the pipeline measurement.')
flags.DEFINE_integer('pipeline_images', 160, 'Images timed for the pipeline measurement.')
FLAGS = flags.FLAGS


def median_seconds(fn, repeats: int) -> float:
    fn()   # warm-up: tracing and first-run allocations
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy(), fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(variant: str, size: int, batch: int, precision: str,
            repeats: int) -> dict[str, float]:
    config = dataclasses.replace(config_lib.PRESETS['synthetic'].detection, variant=variant,
                                 weights='none', image_size=size, mixed_precision=precision)
    model = factory.build_model(config)
    images = tf.random.uniform([batch, size, size, 3], 0, 255)
    num_anchors = sum(anchors_per_level(factory.anchor_config(config), size))
    targets = {
        'class_targets': tf.cast(tf.random.uniform([batch, num_anchors]) < 0.001, tf.float32),
        'class_weights': tf.ones([batch, num_anchors]),
        'box_targets': tf.random.normal([batch, num_anchors, 4]),
        'box_weights': tf.cast(tf.random.uniform([batch, num_anchors]) < 0.001, tf.float32),
        'num_positives': tf.fill([batch], 10.0),
    }
    optimizer = tf.keras.optimizers.SGD(1e-4, momentum=0.9)
    level = model.shared_level

    @tf.function
    def backbone():
        shared = model.trunk(images, training=False)
        return model.rest(shared[f'C{level}'], training=False)['C5']

    @tf.function
    def inference():
        return model.detect(images)['detection_boxes']

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            outputs = model(images, training=True)
            loss = detection_loss(targets, outputs['class_logits'],
                                  outputs['box_outputs'])['total_loss']
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    seconds = {name: median_seconds(fn, repeats) for name, fn in
               (('backbone', backbone), ('inference', inference), ('training', train_step))}
    return {name: batch / s for name, s in seconds.items()}


def pipeline_images_per_second(size: int, batch: int, data_dir: str | None,
                               num_images: int) -> float:
    dataset = datasets.detection_train_dataset('synthetic_person_search/default', size, batch,
                                               data_dir=data_dir)
    iterator = iter(dataset)
    for _ in range(3):
        next(iterator)
    batches = max(1, num_images // batch)
    start = time.perf_counter()
    for _ in range(batches):
        tf.nest.map_structure(lambda t: t.numpy(), next(iterator))
    return batches * batch / (time.perf_counter() - start)


def main(argv):
    del argv
    print(f'detector speed, {FLAGS.variant}, median of {FLAGS.repeats} runs after warm-up '
          f'(images/s; ratio = backbone time / this time)')
    print('| size | batch | precision | backbone img/s | inference img/s (ratio) '
          '| training img/s (ratio) | pipeline img/s |')
    print('|---|---|---|---|---|---|---|')
    for size in (int(s) for s in FLAGS.sizes):
        pipeline = pipeline_images_per_second(size, 8, FLAGS.data_dir, FLAGS.pipeline_images)
        for batch in (int(b) for b in FLAGS.batch_sizes):
            for precision in FLAGS.precisions:
                rates = measure(FLAGS.variant, size, batch, precision, FLAGS.repeats)
                print(f'| {size} | {batch} | {precision} | {rates["backbone"]:.2f} '
                      f'| {rates["inference"]:.2f} ({rates["inference"] / rates["backbone"]:.2f}) '
                      f'| {rates["training"]:.2f} ({rates["training"] / rates["backbone"]:.2f}) '
                      f'| {pipeline:.1f} |', flush=True)


if __name__ == '__main__':
    app.run(main)
