"""Backbone pretraining: a ResNet-50 learns to name what drawn people wear, as ImageNet's stand-in.

Why: the paper's trunk starts from ImageNet (then COCO) weights, which cannot be downloaded here.
A ResNet-50 trained from scratch for detection alone keeps little appearance in its first stages,
and the re-ID branch of J3 sees the pixels only through them. Classifying the clothing colours,
pattern, build, accessory, skin and hair of people drawn in every rendering style and under every
lighting (`tfds_builders/synthetic_attributes`) teaches exactly the invariances re-ID needs, with
no identity of the person-search splits. The detector is then fine-tuned from these weights, as
the paper fine-tunes from pretrained ones (`DetectionConfig.weights='pretrained'`).

The model: [0, 255] crops -> ResNet-50 preprocessing -> ResNet-50 (the detector's own
architecture, `ps_tf.models.backbone.resnet50`) -> global average pooling -> one softmax head per
attribute plus a person / background head. Attribute losses are masked on crops without a person.

Training is Keras `fit`: Adam with linear-cosine decay after a warm-up; `BackupAndRestore` every
`pretrain.checkpoint_every` steps (a rerun resumes there); TensorBoard under `<output_dir>/logs`.
At the end the backbone is written as `<output_dir>/resnet50.h5` (written to a temporary name, then
renamed), the file `--weights` takes.
"""

from __future__ import annotations

import json
import os
import time

import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from ps_tf import atomic
from ps_tf.config import PretrainConfig, save_config
from ps_tf.data import datasets as datasets_lib
from ps_tf.models.backbone import STAGE_OUTPUTS, ResNetPreprocess, resnet50
from ps_tf.precision import MIXED_PRECISION_POLICIES, resolve_mixed_precision
from ps_tf.schedules import LinearCosineDecayWithWarmup

WEIGHTS_FILE = 'resnet50.h5'
ATTRIBUTE_CLASSES = {'upper': 10, 'lower': 8, 'pattern': 4, 'build': 3, 'accessory': 4,
                     'accessory_colour': 5, 'skin': 4, 'hair': 4}
HEADS = {'person': 2, **ATTRIBUTE_CLASSES}
# The stages a re-ID branch may share (J2, J3, J4); `stage_heads` supervises them directly.
SHAREABLE_STAGES = (2, 3, 4)


def stage_head_name(stage: int, head: str) -> str:
    """The output name of `head` on stage C<stage>'s own features (`stage_heads`)."""
    return f'C{stage}_{head}'


def weights_path(output_dir: str) -> str:
    """Where a pretraining run in `output_dir` leaves the backbone weights."""
    return os.path.join(output_dir, WEIGHTS_FILE)


def build_classifier(precision: str = 'float32', stage_heads: bool = False
                     ) -> tuple[tf.keras.Model, tf.keras.Model]:
    """(classifier, backbone): crops (B, H, W, 3) in [0, 255] -> {head: (B, classes) float32
    logits}; the backbone is the ResNet-50 inside it.

    With `stage_heads` the attribute heads are repeated on the global average of C2, C3 and C4
    (outputs `stage_head_name(k, head)`), so that the stages a re-ID branch shares must encode
    the attributes themselves: with heads on C5 alone, C1-C3 only need to feed C4-C5, and J3's
    branch, which replicates C4-C5 from the detector, sees what those early stages keep.
    """
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(MIXED_PRECISION_POLICIES[precision])
    try:
        backbone = resnet50('none')
        stages = tf.keras.Model(backbone.input, {
            k: backbone.get_layer(name).output for k, name in STAGE_OUTPUTS.items()})
        crops = tf.keras.Input(shape=(None, None, 3), name='crops')
        outputs = stages(ResNetPreprocess(name='resnet_preprocess')(crops))
        pooled = {k: tf.keras.layers.GlobalAveragePooling2D(name=f'C{k}_average')(outputs[k])
                  for k in outputs}
        logits = {name: tf.keras.layers.Dense(classes, dtype='float32', name=name)(pooled[5])
                  for name, classes in HEADS.items()}
        if stage_heads:
            for k in SHAREABLE_STAGES:
                logits.update({
                    stage_head_name(k, name): tf.keras.layers.Dense(
                        classes, dtype='float32', name=stage_head_name(k, name))(pooled[k])
                    for name, classes in ATTRIBUTE_CLASSES.items()})
        return tf.keras.Model(crops, logits, name='attribute_classifier'), backbone
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def masked_cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Sparse softmax cross-entropy averaged over the examples whose label is >= 0 (0 when
    none is)."""
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    valid = labels >= 0
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
        tf.maximum(labels, 0), tf.cast(logits, tf.float32))
    weights = tf.cast(valid, tf.float32)
    return tf.reduce_sum(losses * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def accuracy(labels, logits):
    """Top-1 accuracy over the examples whose label is >= 0."""
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    valid = tf.cast(labels >= 0, tf.float32)
    correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
    return tf.reduce_sum(correct * valid) / tf.maximum(tf.reduce_sum(valid), 1.0)


def attribute_dataset(name: str, split: str, batch_size: int, training: bool, seed: int,
                      data_dir: str | None = None) -> tf.data.Dataset:
    """(crops float32 [0, 255], {head: labels}) batches; training adds flips and a random
    rescaled crop (0.85-1 of the side), shuffles and repeats."""
    builder = datasets_lib.get_builder(name, data_dir)
    dataset = builder.as_dataset(split=split, shuffle_files=training,
                                 read_config=tfds.ReadConfig(shuffle_seed=seed))

    def prepare(example):
        image = tf.cast(example['image'], tf.float32)
        if training:
            shape = tf.shape(image)
            scale = tf.random.uniform([], 0.85, 1.0)
            size = tf.cast(tf.cast(shape[:2], tf.float32) * scale, tf.int32)
            image = tf.image.random_crop(image, tf.concat([size, [3]], 0))
            image = tf.image.resize(image, shape[:2])
            image = tf.image.random_flip_left_right(image)
        labels = {name: example[name] for name in HEADS}
        return image, labels

    if training:
        dataset = dataset.shuffle(4096, seed=seed).repeat()
    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)


def with_stage_labels(dataset: tf.data.Dataset, outputs: list[str]) -> tf.data.Dataset:
    """Adds the labels of the stage heads (`stage_head_name`: the same attribute's label) to
    `attribute_dataset`'s batches."""
    extra = {name: name.split('_', 1)[1] for name in outputs if name not in HEADS}
    if not extra:
        return dataset
    return dataset.map(lambda crops, labels: (crops, {
        **labels, **{name: labels[head] for name, head in extra.items()}}))


class _Progress(tf.keras.callbacks.Callback):
    """A progress line every `every` steps (Keras' own bar is off: it floods logs)."""

    def __init__(self, every: int, total: int):
        super().__init__()
        self.every, self.total = every, total
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step % self.every == 0 or step == self.total:
            rate = (step - self.first_step) / max(1e-9, time.perf_counter() - self.started)
            parts = ', '.join(f'{k} {v:.3f}' for k, v in sorted((logs or {}).items())
                              if k == 'loss' or (k.endswith('_accuracy')
                                                 and not k.startswith('C')))
            print(f'pretrain step {step}/{self.total}: {parts} ({rate:.1f} steps/s)', flush=True)

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()
        self.first_step = int(self.model.optimizer.iterations.numpy())


def pretrain_backbone(config: PretrainConfig, output_dir: str,
                      data_dir: str | None = None) -> dict:
    """Trains the attribute classifier and writes the backbone weights; returns the validation
    metrics. A finished run (its weights file exists) is not trained again."""
    final = weights_path(output_dir)
    tf.io.gfile.makedirs(output_dir)
    if tf.io.gfile.exists(final) and tf.io.gfile.exists(os.path.join(output_dir, 'results.json')):
        with tf.io.gfile.GFile(os.path.join(output_dir, 'results.json')) as f:
            logging.info('pretraining already finished: %s', final)
            return json.load(f)
    save_config(config, output_dir)
    tf.keras.utils.set_random_seed(config.seed)
    precision = resolve_mixed_precision(config.mixed_precision)
    model, backbone = build_classifier(precision, config.stage_heads)
    outputs = model.output_names
    schedule = LinearCosineDecayWithWarmup(config.learning_rate, config.steps,
                                           warmup_steps=min(config.warmup_steps,
                                                            config.steps))
    model.compile(optimizer=tf.keras.optimizers.Adam(schedule),
                  loss={name: masked_cross_entropy for name in outputs},
                  metrics={name: [accuracy] for name in outputs})
    # Slot variables now: a train function that creates them on its first call is traced twice.
    model.optimizer.build(model.trainable_variables)
    train = with_stage_labels(attribute_dataset(config.dataset, 'train', config.batch_size,
                                                True, config.seed, data_dir), outputs)
    validation = with_stage_labels(attribute_dataset(config.dataset, 'validation',
                                                     config.batch_size, False, config.seed,
                                                     data_dir), outputs)
    # One Keras epoch per checkpoint period: BackupAndRestore saves at epoch ends, and a rerun
    # of an interrupted run resumes from the last one (weights, optimizer, step).
    period = max(1, min(config.checkpoint_every, config.steps))
    epochs = -(-config.steps // period)
    progress = _Progress(config.log_every, epochs * period)
    started = time.perf_counter()
    model.fit(train, epochs=epochs, steps_per_epoch=period, verbose=0, callbacks=[
        tf.keras.callbacks.BackupAndRestore(os.path.join(output_dir, 'backup')),
        tf.keras.callbacks.TensorBoard(os.path.join(output_dir, 'logs'),
                                       update_freq=config.log_every),
        progress])
    metrics = model.evaluate(validation, verbose=0, return_dict=True)
    results = {k: float(v) for k, v in metrics.items()}
    results.update(resumed_at_step=progress.first_step,
                   minutes=(time.perf_counter() - started) / 60)
    with atomic.replacing(final) as temporary:
        backbone.save_weights(temporary)
    atomic.write_json(os.path.join(output_dir, 'results.json'), results)
    accuracies = {k[:-len('_accuracy')]: v for k, v in results.items()
                  if k.endswith('_accuracy')}
    print('pretraining validation accuracy: ' + ', '.join(
        f'{k} {v:.3f}' for k, v in sorted(accuracies.items())) + f'; wrote {final}', flush=True)
    if config.stage_heads:
        print('mean attribute accuracy of the heads on each stage: ' + ', '.join(
            f'C{k} {_mean_accuracy(accuracies, f"C{k}_"):.3f}' for k in SHAREABLE_STAGES)
            + f', C5 {_mean_accuracy(accuracies, ""):.3f}', flush=True)
    return results


def _mean_accuracy(accuracies: dict[str, float], prefix: str) -> float:
    """The mean over `ATTRIBUTE_CLASSES` of the accuracies named `prefix + attribute`."""
    return sum(accuracies[prefix + name] for name in ATTRIBUTE_CLASSES) / len(ATTRIBUTE_CLASSES)
