"""What one step of each stage costs in arithmetic: the floating-point operations of the paper
preset's training steps, feature pooling and inference, for docs/scaling.md.

Every graph is this code's own: the detector from `ps_tf.models.factory.build_model` with a
preset of `ps_tf.config.PRESETS` (float32), the re-ID branch from `ps_tf.models.reid`, the
disjoint baseline's embedder from `ps_tf.models.disjoint`. FLOPs are TensorFlow's graph profiler
count (`ps_tf.graph_cost.count_flops`: 2 per multiply-add of Conv2D, its two backprops and MatMul;
1 per element of BiasAdd, Add, Mul, ...; batch norm, crop_and_resize and NMS count 0). Nothing
is executed: each function is only traced (inference graphs are also frozen, to inline their
`tf.cond`), so a batch of 10 images at 640 px costs no memory.

Rows:
- `stage1 <preset>`: one training step of the detector, forward + focal/smooth-L1 loss +
  backward (gradients of every trainable variable; the optimizer update, ~3 FLOPs a parameter, is
  left out), at the preset's image size and batch size, on random targets;
- `stage2 <variant>`: one stage-2 step on a P x K batch of pooled records (the paper preset's
  32 x 4 = 128), forward + batch-hard triplet loss + backward; `Disj` on 256 x 128 crops;
- `pooling <variant>`: the frozen trunk's forward pass on one image (ROI align not counted);
- `inference <variant>`: one image through the detector with NMS, then the re-ID branch on
  `--people` boxes;
- `decode` (not FLOPs: a timing): frames/s of `ps_tf.search.media.video_frames`, the decoder
  `search.py` indexes videos with, on a `--decode_seconds` clip of moving shapes written here
  with PyAV (H.264, 1920 x 1080, 25 frames/s, x264 `veryfast`, CRF 23), sampled at 1 frame/s.
  It decodes every frame, so its rate per source frame is what indexing video costs the host.

For the training steps it also prints the parameters and an activation estimate: the bytes of
every float tensor the forward pass produces (ops outside the gradient), in float32, an upper
bound of what backprop keeps.

    python benchmarks/step_flops.py                     # every FLOP row (~6 min on 2 busy cores)
    python benchmarks/step_flops.py --parts=stage1                  # paper and synthetic stage 1
    python benchmarks/step_flops.py --parts=stage2,pooling,inference --variants=J3
    python benchmarks/step_flops.py --parts=decode                  # needs PyAV (search.py's)
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from ps_tf import config as config_lib
from ps_tf.graph_cost import count_flops
from ps_tf.losses import HARD, detection_loss, triplet_loss
from ps_tf.models import factory
from ps_tf.models.disjoint import DISJOINT, build_disjoint_embedder
from ps_tf.models.joint import JointModel
from ps_tf.models.reid import build_reid_branch, pooled_shape
from ps_tf.ops.anchors import anchors_per_level

flags.DEFINE_list('parts', ['stage1', 'stage2', 'pooling', 'inference'],
                  'Which rows: stage1, stage2, pooling, inference, decode.')
flags.DEFINE_list('stage1_presets', ['paper', 'synthetic'],
                  'Presets whose stage-1 step is counted (at their image and batch size).')
flags.DEFINE_list('variants', ['J2', 'J3', 'J4', 'Disj'],
                  'Variants of the stage-2, pooling and inference rows (Disj: stage 2 only).')
flags.DEFINE_string('reid_preset', 'paper', 'Re-ID preset: P x K and the embedding size.')
flags.DEFINE_integer('people', 5, 'Boxes embedded per image in the inference rows.')
flags.DEFINE_integer('decode_seconds', 10, 'Length of the clip the decode row times.')
FLAGS = flags.FLAGS

_NOT_ACTIVATIONS = {'Const', 'Identity', 'NoOp', 'Placeholder', 'Shape', 'Reshape',
                    'ReadVariableOp', 'StopGradient'}


def _float32(config):
    return dataclasses.replace(config, mixed_precision='float32')


def graph_flops(function) -> int:
    """`count_flops` for a training step: the same profiler count on the function's own graph.

    A training step cannot be frozen (batch norm in training mode assigns its moving averages),
    and needs not be: it has no nested function or `tf.cond` to inline.
    """
    options = (tf.compat.v1.profiler.ProfileOptionBuilder(
        tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()).with_empty_output().build())
    profile = tf.compat.v1.profiler.profile(graph=function.graph,
                                            run_meta=tf.compat.v1.RunMetadata(), cmd='op',
                                            options=options)
    return int(profile.total_float_ops)


def forward_activation_bytes(function) -> int:
    """Bytes of the float outputs of every op of the step's graph outside the gradient
    (`gradient_tape/` scope), constants, variable reads and views excluded."""
    total = 0
    for op in function.graph.get_operations():
        if op.type in _NOT_ACTIVATIONS or op.name.startswith('gradient_tape'):
            continue
        for tensor in op.outputs:
            if tensor.dtype.is_floating and tensor.shape.is_fully_defined():
                total += tensor.shape.num_elements() * tensor.dtype.size
    return total


def stage1_rows(preset: str) -> list[dict]:
    # Random weights: the preset's own may be a pretraining run's, which costs the same.
    config = dataclasses.replace(_float32(config_lib.PRESETS[preset].detection), weights='none')
    size, batch = config.image_size, config.batch_size
    model = factory.build_model(config)
    model(tf.zeros([1, size, size, 3]), training=False)
    num_anchors = sum(anchors_per_level(factory.anchor_config(config), size))
    spec = tf.TensorSpec([batch, size, size, 3], tf.float32)
    targets = {
        'class_targets': tf.zeros([batch, num_anchors]),
        'class_weights': tf.ones([batch, num_anchors]),
        'box_targets': tf.zeros([batch, num_anchors, 4]),
        'box_weights': tf.zeros([batch, num_anchors]),
        'num_positives': tf.fill([batch], 10.0),
    }

    @tf.function
    def step(images):
        with tf.GradientTape() as tape:
            outputs = model(images, training=True)
            loss = detection_loss(targets, outputs['class_logits'],
                                  outputs['box_outputs'])['total_loss']
        return tape.gradient(loss, model.trainable_variables)

    function = step.get_concrete_function(spec)
    flops = graph_flops(function)
    activations = forward_activation_bytes(function)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    every = sum(int(np.prod(v.shape)) for v in model.variables)
    return [{'row': f'stage1 {preset} ({config.variant}, {config.layout})',
             'shape': f'{batch} x {size}^2', 'flops': flops, 'per': flops / batch,
             'per_unit': 'image',
             'note': f'params {every / 1e6:.1f} M ({trainable / 1e6:.1f} M trainable); '
                     f'forward activations {activations / batch / 2**30:.2f} GiB/image'}]


def stage2_rows(variants: list[str]) -> list[dict]:
    reid = config_lib.PRESETS[FLAGS.reid_preset].reid
    batch = reid.identities_per_batch * reid.samples_per_identity
    labels = tf.repeat(tf.range(reid.identities_per_batch), reid.samples_per_identity)
    rows = []
    for variant in variants:
        if variant == DISJOINT:
            network = build_disjoint_embedder(reid.embedding_dim, 'none', False, 'float32',
                                              'garden')
            shape = (256, 128, 3)
        else:
            network = build_reid_branch(variant, reid.embedding_dim, policy='float32',
                                        layout='garden')
            shape = pooled_shape(variant)

        @tf.function
        def step(features, network=network):
            with tf.GradientTape() as tape:
                embeddings = tf.math.l2_normalize(network(features, training=True), axis=-1)
                loss = triplet_loss(HARD, labels, embeddings, reid.margin)
            return tape.gradient(loss, network.trainable_variables)

        function = step.get_concrete_function(tf.TensorSpec((batch,) + tuple(shape), tf.float32))
        flops = graph_flops(function)
        activations = forward_activation_bytes(function)
        params = sum(int(np.prod(v.shape)) for v in network.trainable_variables)
        rows.append({'row': f'stage2 {variant}', 'shape': f'{batch} x {shape}', 'flops': flops,
                     'per': flops / batch, 'per_unit': 'sample',
                     'note': f'{params / 1e6:.1f} M trainable params; forward activations '
                             f'{activations / 2**30:.2f} GiB/step'})
    return rows


def detector_for(variant: str):
    config = dataclasses.replace(_float32(config_lib.PRESETS['paper'].detection), variant=variant)
    return config, factory.built_detector(config)


def pooling_rows(variants: list[str]) -> list[dict]:
    rows = []
    for variant in [v for v in variants if v != DISJOINT]:
        config, detector = detector_for(variant)
        level = f'C{detector.shared_level}'
        function = tf.function(lambda images, d=detector: d.trunk(images, training=False)[level])
        flops = count_flops(function.get_concrete_function(
            tf.TensorSpec([1, config.image_size, config.image_size, 3], tf.float32)))
        rows.append({'row': f'pooling {variant}', 'shape': f'1 x {config.image_size}^2',
                     'flops': flops, 'per': flops, 'per_unit': 'image',
                     'note': f'trunk to {level}'})
    return rows


def inference_rows(variants: list[str]) -> list[dict]:
    reid = config_lib.PRESETS[FLAGS.reid_preset].reid
    rows = []
    for variant in [v for v in variants if v != DISJOINT]:
        config, detector = detector_for(variant)
        size = config.image_size
        model = JointModel(detector, build_reid_branch(variant, reid.embedding_dim,
                                                       policy='float32', layout='garden'))
        height = np.linspace(0.2, 0.45, FLAGS.people) * size
        boxes = tf.constant(np.stack([0.1 * size + 0 * height, 0.1 * size + 0 * height,
                                      0.1 * size + height, 0.1 * size + 0.4 * height], -1),
                            tf.float32)
        index = tf.zeros([FLAGS.people], tf.int32)

        @tf.function
        def run(images, model=model):
            detections = model.detector.detect(images)
            source = model.region_source(images, detections)
            return (detections['detection_boxes'],
                    model.embed_regions(source, boxes, index, size))

        @tf.function
        def detect_only(images, model=model):
            return model.detector.detect(images)['detection_boxes']

        spec = tf.TensorSpec([1, size, size, 3], tf.float32)
        whole = count_flops(run.get_concrete_function(spec))
        detector_flops = count_flops(detect_only.get_concrete_function(spec))
        rows.append({'row': f'inference {variant}', 'shape': f'1 x {size}^2, {FLAGS.people} people',
                     'flops': whole, 'per': whole, 'per_unit': 'image',
                     'note': f'detector alone {detector_flops / 1e9:.1f} G; re-ID '
                             f'{(whole - detector_flops) / FLAGS.people / 1e9:.2f} G/person'})
    return rows


def write_clip(path: str, seconds: int, width: int = 1920, height: int = 1080,
               rate: int = 25) -> int:
    """An H.264 clip of shapes moving over a textured background; returns its bytes."""
    import av

    rng = np.random.default_rng(0)
    background = rng.integers(60, 200, (height // 8, width // 8, 3), np.uint8)
    background = np.repeat(np.repeat(background, 8, axis=0), 8, axis=1)
    with av.open(path, 'w') as container:
        stream = container.add_stream('libx264', rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, 'yuv420p'
        stream.options = {'preset': 'veryfast', 'crf': '23'}
        for number in range(seconds * rate):
            frame = background.copy()
            for person in range(8):
                x = (number * (3 + person) + 200 * person) % (width - 80)
                y = 300 + 60 * person % (height - 400)
                frame[y:y + 200, x:x + 80] = (40 * person) % 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format='rgb24')):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return os.path.getsize(path)


def decode_rows() -> list[dict]:
    from ps_tf.search.media import video_frames

    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, 'clip.mp4')
        size = write_clip(path, FLAGS.decode_seconds)
        start = time.perf_counter()
        sampled = sum(1 for _ in video_frames(path, fps=1.0))
        seconds = time.perf_counter() - start
    frames = FLAGS.decode_seconds * 25
    return [{'row': 'decode (timed, not FLOPs)', 'shape': f'{frames} frames 1920 x 1080 H.264',
             'flops': 0, 'per': 0, 'per_unit': 'frame',
             'note': f'{frames / seconds:.0f} source frames/s decoded, {sampled} sampled at 1/s; '
                     f'clip {size * 8 / FLAGS.decode_seconds / 1e6:.1f} Mbit/s'}]


def main(argv):
    del argv
    rows = []
    if 'stage1' in FLAGS.parts:
        for preset in FLAGS.stage1_presets:
            rows += stage1_rows(preset)
    if 'stage2' in FLAGS.parts:
        rows += stage2_rows(FLAGS.variants)
    if 'pooling' in FLAGS.parts:
        rows += pooling_rows(FLAGS.variants)
    if 'inference' in FLAGS.parts:
        rows += inference_rows(FLAGS.variants)
    if 'decode' in FLAGS.parts:
        rows += decode_rows()
    print('FLOPs per call (TensorFlow graph profiler, float32 graphs, 2 per multiply-add)')
    print('| graph | input | GFLOP per call | GFLOP per unit | notes |')
    print('|---|---|---|---|---|')
    for row in rows:
        flops = (f'{row["flops"] / 1e9:,.1f} | {row["per"] / 1e9:,.2f} per {row["per_unit"]}'
                 if row['flops'] else '– | –')
        print(f'| {row["row"]} | {row["shape"]} | {flops} | {row["note"]} |')


if __name__ == '__main__':
    app.run(main)
