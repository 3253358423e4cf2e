"""The paper's Table 1b on this machine: joint J2 / J3 / J4 against the disjoint baseline (Disj:
the same RetinaNet, then a ResNet-50 on 256 x 128 crops), all measured side by side in one run.

For every image batch size B and number of people per image N, times (compiled `tf.function`s,
one graph per input shape, median of `--repeats` runs after `--warmup` calls, the models taking
turns in each round so that a change of machine load hits them alike):
- `detector`: the detector alone (`RetinaNetDetector.detect`: network, decoding, NMS);
- each model's whole pipeline: the detector, then the re-ID part embedding exactly N boxes per
  image (the same fixed person boxes for every model, taken after NMS has run so that the re-ID
  part waits for the detections as it does in `detect_and_embed`), all boxes of the batch
  through one `crop_and_resize` and one forward pass of the embedding network.
Random weights: the cost does not depend on them. Per image = batch time / B; per person (the
paper's definition, "time to detect a person and extract his/her re-ID feature") = batch time /
(B * N); the re-ID part = pipeline - detector; its overhead = re-ID part / detector time. All
precisions and XLA settings are built up front and timed in the same rounds.

Beside each measured Disj/Jx speed ratio stands the FLOP-ideal one, the ratio of the two
pipelines' floating-point operations per image (TensorFlow's graph profiler on the frozen batch-1
graphs, `ps_tf.graph_cost.count_flops`): on a CPU, where the cost is arithmetic, the limit of the
ratio. Every precision in `--precisions` (float32, or Keras mixed_bfloat16) and every
`--jit_compile` setting gets its own table; the first is the headline. XLA compiles the networks;
NMS and crop_and_resize, which XLA has no kernels for, stay outside. `--profile_dir` traces one
pipeline with the TensorFlow profiler and prints its op types and scopes by time.

    python benchmarks/runtime_table.py --output_json=/tmp/runtime_table.json   # 640 px, ~25 min
    python benchmarks/runtime_table.py --precisions=bfloat16 --jit_compile=false,true \
        --batch_sizes=1,4 --people=20 --models=J3,Disj
    python benchmarks/runtime_table.py --image_size=64 --batch_sizes=1 --people=2 --repeats=1
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import platform
import statistics
import subprocess
import time
from typing import Callable, Iterator

import numpy as np
import tensorflow as tf
from absl import app, flags

from ps_tf import graph_cost
from ps_tf.models.disjoint import DISJOINT, DisjointModel, build_disjoint_embedder
from ps_tf.models.joint import JointModel, PersonSearchModel
from ps_tf.models.reid import build_reid_branch
from ps_tf.models.retinanet import build_detector
from ps_tf.ops.geometry import roi_align
from ps_tf.precision import MIXED_PRECISION_POLICIES

JOINT_VARIANTS = ('J2', 'J3', 'J4')
DETECTOR = 'detector'


@dataclasses.dataclass(frozen=True)
class Settings:
    image_size: int = 640
    batch_sizes: tuple[int, ...] = (1, 4, 8)
    people: tuple[int, ...] = (5, 20)
    models: tuple[str, ...] = JOINT_VARIANTS + (DISJOINT,)
    precisions: tuple[str, ...] = ('bfloat16', 'float32')
    jit_compile: tuple[bool, ...] = (False,)
    repeats: int = 5
    warmup: int = 1
    embedding_dim: int = 128
    output_json: str | None = None
    profile_dir: str | None = None
    profile: tuple[str, int, int] = ('J4', 8, 20)   # model, batch, people traced (first precision)


@contextlib.contextmanager
def keras_policy(precision: str) -> Iterator[None]:
    """Layers built inside take the Keras dtype policy of `precision` ('float32', 'bfloat16')."""
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(MIXED_PRECISION_POLICIES[precision])
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def build_models(names: tuple[str, ...], precision: str, image_size: int,
                 embedding_dim: int) -> dict[str, PersonSearchModel]:
    """The compared models with random weights; Disj reuses the first joint model's detector
    (or a J3 one): the detectors of all variants are the same network."""
    policy = MIXED_PRECISION_POLICIES[precision]
    models: dict[str, PersonSearchModel] = {}
    for variant in [n for n in names if n in JOINT_VARIANTS]:
        with keras_policy(precision):
            detector = build_detector(variant)
        detector(tf.zeros([1, image_size, image_size, 3]), training=False)
        models[variant] = JointModel(detector, build_reid_branch(
            variant, embedding_dim, policy=policy))
    if DISJOINT in names:
        if models:
            detector = next(iter(models.values())).detector
        else:
            with keras_policy(precision):
                detector = build_detector('J3')
            detector(tf.zeros([1, image_size, image_size, 3]), training=False)
        models[DISJOINT] = DisjointModel(detector, build_disjoint_embedder(
            embedding_dim, policy=policy))
    unknown = set(names) - set(models)
    if unknown:
        raise ValueError(f'unknown models {sorted(unknown)}; choose from '
                         f'{list(JOINT_VARIANTS) + [DISJOINT]}')
    return {name: models[name] for name in names}


def person_boxes(image_size: int, batch: int, people: int) -> np.ndarray:
    """(batch, people, 4) fixed pixel ymin, xmin, ymax, xmax person-shaped boxes (height 20-45%
    of the image, width 0.4 x height) inside the image; the same for every model."""
    rng = np.random.default_rng(0)
    height = rng.uniform(0.2, 0.45, (batch, people)) * image_size
    width = 0.4 * height
    top = rng.uniform(0.0, 1.0, (batch, people)) * (image_size - height)
    left = rng.uniform(0.0, 1.0, (batch, people)) * (image_size - width)
    return np.stack([top, left, top + height, left + width], axis=-1).astype(np.float32)


def pipeline_functions(models: dict[str, PersonSearchModel], image_size: int, batch: int,
                       people: int, jit_compile: bool
                       ) -> dict[str, Callable[[], object]]:
    """Compiled functions of one input shape: the detector alone, then each model's pipeline."""
    images = tf.random.stateless_uniform([batch, image_size, image_size, 3], [1, 2], maxval=255.0)
    boxes = tf.constant(person_boxes(image_size, batch, people))
    box_image_index = tf.repeat(tf.range(batch), people)

    def detect(detector):
        if not jit_compile:
            return detector.detect(images)
        # XLA on the network only: it has no kernel for the combined NMS.
        network = tf.function(lambda x: detector(x, training=False), jit_compile=True)
        outputs = network(images)
        return {**detector.detection_generator(outputs['class_logits'],
                                               outputs['box_outputs'], image_size),
                'shared_features': outputs['shared_features']}

    def pipeline(model):
        # XLA on the embedding network only: it has no kernel for crop_and_resize.
        network = model.reid_branch if isinstance(model, JointModel) else model.embedder
        compiled_network = tf.function(network.embed, jit_compile=True)

        def run():
            detections = detect(model.detector)
            # Always true, but only known once NMS has run: the re-ID part waits for it.
            after_nms = tf.reduce_all(detections['num_detections'] >= 0)
            selected = tf.reshape(tf.where(after_nms, boxes, tf.zeros_like(boxes)), [-1, 4])
            source = model.region_source(images, detections)
            if not jit_compile:
                embeddings = model.embed_regions(source, selected, box_image_index, image_size)
            else:
                embeddings = compiled_network(roi_align(source, selected, box_image_index,
                                                        image_size, model.crop_size))
            return detections['detection_boxes'], embeddings
        return tf.function(run)

    def detector_only(detector):
        detections = detect(detector)   # its outputs, not the (large) shared feature map
        return {key: detections[key] for key in
                ('detection_boxes', 'detection_scores', 'num_detections')}

    any_model = next(iter(models.values()))
    functions = {DETECTOR: tf.function(lambda: detector_only(any_model.detector))}
    functions.update({name: pipeline(model) for name, model in models.items()})
    return functions


def _fetch(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    tf.nest.map_structure(lambda t: t.numpy(), function())
    return time.perf_counter() - start


def timed_runs(functions: dict[str, Callable[[], object]], repeats: int,
               warmup: int) -> dict[str, list[float]]:
    """Wall times of each function: the first call traces, `warmup` more calls are not timed,
    then `repeats` rounds in which every function runs once (rotating order)."""
    for function in functions.values():
        for _ in range(1 + warmup):
            _fetch(function)
    names = list(functions)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(_fetch(functions[name]))
    return times


def flops_per_image(models: dict[str, PersonSearchModel], image_size: int,
                    people: tuple[int, ...]) -> dict[str, dict[int, int]]:
    """{detector or model: {N: FLOPs of its batch-1 graph}} (float32 graphs)."""
    flops: dict[str, dict[int, int]] = {}
    for count in people:
        functions = pipeline_functions(models, image_size, 1, count, jit_compile=False)
        for name, function in functions.items():
            flops.setdefault(name, {})[count] = graph_cost.count_flops(
                function.get_concrete_function())
    return flops


def machine() -> dict[str, object]:
    model_name = platform.processor()
    try:
        lscpu = subprocess.run(['lscpu'], capture_output=True, text=True, check=True).stdout
        model_name = next(line.split(':', 1)[1].strip() for line in lscpu.splitlines()
                          if line.startswith('Model name')) or model_name
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    return {'cpu': model_name, 'cores': os.cpu_count(), 'tensorflow': tf.__version__}


def measure(settings: Settings, models: dict[str, dict[str, PersonSearchModel]],
            flops: dict[str, dict[int, int]]) -> list[dict]:
    """The rows of every table: each precision's models (and detector alone), with and without
    XLA, at every B and N. All functions of one B and N are timed in the same rounds, so that a
    change of machine load hits every model, precision and XLA setting alike."""
    rows = []
    for batch in settings.batch_sizes:
        for people in settings.people:
            functions = {}
            for precision, jit_compile in itertools.product(settings.precisions,
                                                            settings.jit_compile):
                for name, function in pipeline_functions(
                        models[precision], settings.image_size, batch, people,
                        jit_compile).items():
                    functions[(precision, jit_compile, name)] = function
            times = timed_runs(functions, settings.repeats, settings.warmup)
            seconds = {key: statistics.median(values) for key, values in times.items()}
            for (precision, jit_compile, name), value in seconds.items():
                detector = seconds[(precision, jit_compile, DETECTOR)]
                disjoint = seconds.get((precision, jit_compile, DISJOINT))
                row = {'precision': precision, 'jit_compile': jit_compile, 'model': name,
                       'batch': batch, 'people': people, 'seconds_per_batch': value,
                       'all_seconds_per_batch': times[(precision, jit_compile, name)],
                       'ms_per_image': 1e3 * value / batch,
                       'ms_per_person': 1e3 * value / (batch * people),
                       'gflops_per_image': flops[name][people] / 1e9}
                if name != DETECTOR:
                    reid = value - detector
                    row.update({'reid_ms_per_person': 1e3 * reid / (batch * people),
                                'reid_overhead': reid / detector})
                if name in JOINT_VARIANTS and disjoint is not None:
                    row.update({'disj_ratio': disjoint / value,
                                'flop_ideal_ratio': flops[DISJOINT][people] / flops[name][people]})
                rows.append(row)
            print(f'  measured batch {batch}, {people} people: ' + ', '.join(
                f'{"/".join(map(str, key))} {v:.3f} s' for key, v in seconds.items()), flush=True)
    return rows


def profile(settings: Settings, models: dict[str, PersonSearchModel]) -> dict[str, list[dict]]:
    """Traces the `settings.profile` pipeline; prints and returns its time by op type and by
    scope."""
    name, batch, people = settings.profile
    function = pipeline_functions({name: models[name]}, settings.image_size, batch, people,
                                  jit_compile=False)[name]
    _fetch(function)
    _fetch(function)
    by_type, by_scope = graph_cost.profile_op_times(function, settings.profile_dir, runs=3)
    report = {}
    for title, totals in (('op type', by_type), ('scope', by_scope)):
        total = sum(seconds for _, seconds in totals) or 1.0
        print(f'\nprofile of {name}, batch {batch}, {people} people ({settings.profile_dir}): '
              f'host time by {title}, summed over threads, of {1e3 * total / 3:.0f} ms per run')
        print(f'| {title} | share | ms per run |\n|---|---|---|')
        for key, seconds in totals[:12]:
            print(f'| {key} | {100 * seconds / total:.1f}% | {1e3 * seconds / 3:.1f} |')
        report[title] = [{'name': key, 'share': seconds / total, 'ms_per_run': 1e3 * seconds / 3}
                         for key, seconds in totals]
    return report


def format_table(rows: list[dict], people: tuple[int, ...]) -> str:
    """The paper's layout: per-person ms for each N, then this run's extras."""
    header = ['model', '#im./batch']
    for count in people:
        header += [f'{count} p./im. ms/person', 'ms/image', 'Disj/Jx (FLOP-ideal)',
                   're-ID overhead']
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    index = {(r['model'], r['batch'], r['people']): r for r in rows if 'model' in r}
    names = list(dict.fromkeys(r['model'] for r in rows if 'model' in r))
    names = [n for n in names if n != DETECTOR] + [DETECTOR]
    for name in names:
        for batch in sorted({r['batch'] for r in rows if 'model' in r}):
            cells = [name, str(batch)]
            for count in people:
                row = index[(name, batch, count)]
                ratio = (f'{row["disj_ratio"]:.2f} ({row["flop_ideal_ratio"]:.2f})'
                         if 'disj_ratio' in row else '')
                overhead = f'{100 * row["reid_overhead"]:+.0f}%' if 'reid_overhead' in row else ''
                cells += [f'{row["ms_per_person"]:.1f}', f'{row["ms_per_image"]:.0f}', ratio,
                          overhead]
            lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def format_flops(flops: dict[str, dict[int, int]], people: tuple[int, ...]) -> str:
    lines = ['| model | ' + ' | '.join(f'GFLOPs/image at {n} p. (Disj/Jx)' for n in people)
             + ' |', '|---|' + '---|' * len(people)]
    for name, counts in flops.items():
        cells = []
        for count in people:
            ideal = (f' ({flops[DISJOINT][count] / counts[count]:.2f})'
                     if name in JOINT_VARIANTS and DISJOINT in flops else '')
            cells.append(f'{counts[count] / 1e9:.1f}{ideal}')
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def format_precisions(rows: list[dict], first: str) -> str:
    """ms/image of every other precision against the first, per model, B and N."""
    timed = [r for r in rows if 'model' in r and not r['jit_compile']]
    lines = ['| model | batch | people | ' + ' | '.join(
        f'{p} ms/image' for p in dict.fromkeys(r['precision'] for r in timed))
        + f' | speed-up of {first} |', '|---|---|---|' + '---|' * (
            len({r['precision'] for r in timed}) + 1)]
    by_key: dict[tuple, dict[str, float]] = {}
    for r in timed:
        by_key.setdefault((r['model'], r['batch'], r['people']), {})[r['precision']] = \
            r['ms_per_image']
    for (model, batch, people), times in by_key.items():
        others = [t for p, t in times.items() if p != first]
        speedup = f'{others[0] / times[first]:.2f}x' if others and first in times else ''
        lines.append(f'| {model} | {batch} | {people} | '
                     + ' | '.join(f'{t:.0f}' for t in times.values()) + f' | {speedup} |')
    return '\n'.join(lines)


def run(settings: Settings) -> dict:
    """Measures everything `settings` asks for; prints the tables and returns (and writes) the
    JSON report."""
    load_before = os.getloadavg()
    started = time.time()
    models = {precision: build_models(settings.models, precision, settings.image_size,
                                      settings.embedding_dim)
              for precision in settings.precisions}
    # The counts do not depend on the precision.
    flops = flops_per_image(models[settings.precisions[0]], settings.image_size, settings.people)
    print(f'FLOPs per image at {settings.image_size} px (TensorFlow graph profiler, batch 1)\n'
          f'{format_flops(flops, settings.people)}', flush=True)
    rows = measure(settings, models, flops)
    profiled = profile(settings, models[settings.precisions[0]]) if settings.profile_dir \
        else None
    report = {'machine': machine(), 'load_average_before': load_before,
              'load_average_after': os.getloadavg(), 'minutes': (time.time() - started) / 60,
              'settings': dataclasses.asdict(settings),
              'flops_per_image': {k: {str(n): v for n, v in c.items()} for k, c in flops.items()},
              'rows': rows, 'profile': profiled}
    print(f'\nmachine: {report["machine"]}; load average (1, 5, 15 min) before '
          f'{tuple(round(x, 2) for x in load_before)}, after '
          f'{tuple(round(x, 2) for x in report["load_average_after"])}')
    for precision in settings.precisions:
        for jit_compile in settings.jit_compile:
            table = [r for r in report['rows']
                     if r['precision'] == precision and r['jit_compile'] == jit_compile]
            print(f'\n{settings.image_size} x {settings.image_size}, {precision}'
                  f'{", XLA" if jit_compile else ""}: median of {settings.repeats} runs; '
                  f'ms per person = batch time / (B x N); re-ID overhead = (pipeline - detector)'
                  f' / detector')
            print(format_table(table, settings.people))
    if len(settings.precisions) > 1:
        print(f'\nprecisions (no XLA)\n'
              f'{format_precisions(report["rows"], settings.precisions[0])}')
    if settings.output_json:
        directory = os.path.dirname(os.path.abspath(settings.output_json))
        os.makedirs(directory, exist_ok=True)
        with open(settings.output_json, 'w') as stream:
            json.dump(report, stream, indent=2)
        print(f'wrote {settings.output_json}')
    return report


def define_flags() -> None:
    """The command-line flags (defined only when run as a script, so tests can import this)."""
    defaults = Settings()
    flags.DEFINE_integer('image_size', defaults.image_size, 'Square input side, pixels.')
    flags.DEFINE_list('batch_sizes', [str(b) for b in defaults.batch_sizes], 'Images per batch.')
    flags.DEFINE_list('people', [str(n) for n in defaults.people],
                      'People embedded per image (N).')
    flags.DEFINE_list('models', list(defaults.models), 'J2, J3, J4, Disj.')
    flags.DEFINE_list('precisions', list(defaults.precisions),
                      'bfloat16 and/or float32; the first is the headline table.')
    flags.DEFINE_list('jit_compile', ['false'], 'false and/or true: XLA on the networks.')
    flags.DEFINE_integer('repeats', defaults.repeats, 'Timed runs (the median is reported).')
    flags.DEFINE_integer('warmup', defaults.warmup, 'Untimed calls after the tracing call.')
    flags.DEFINE_integer('embedding_dim', defaults.embedding_dim, 'Embedding size.')
    flags.DEFINE_string('output_json', None, 'Write the report here.')
    flags.DEFINE_string('profile_dir', None, 'Trace --profile with the TensorFlow profiler '
                        'into this log directory (TensorBoard) and print its top op types.')
    flags.DEFINE_list('profile', ['J4', '8', '20'], 'Model, batch, people of the traced run.')


def main(argv):
    del argv
    tf.get_logger().setLevel('ERROR')   # one tf.function per shape and model is the point here
    f = flags.FLAGS
    booleans = {'true': True, 'false': False}
    if any(v.lower() not in booleans for v in f.jit_compile):
        raise app.UsageError('--jit_compile takes false and/or true')
    settings = Settings(
        image_size=f.image_size, batch_sizes=tuple(int(b) for b in f.batch_sizes),
        people=tuple(int(n) for n in f.people), models=tuple(f.models),
        precisions=tuple(f.precisions),
        jit_compile=tuple(booleans[v.lower()] for v in f.jit_compile), repeats=f.repeats,
        warmup=f.warmup, embedding_dim=f.embedding_dim, output_json=f.output_json,
        profile_dir=f.profile_dir,
        profile=(f.profile[0], int(f.profile[1]), int(f.profile[2])))
    run(settings)


if __name__ == '__main__':
    define_flags()
    app.run(main)
