"""`ps-train`: trains ps_tf (`python train.py` in a checkout runs the same program).

    python train.py --model_dir=runs/synthetic_j3       # everything, on the synthetic dataset

    python train.py --stage=detection --preset=synthetic --model_dir=runs/synthetic_j3
    python train.py --stage=detection --preset=paper --model_dir=runs/paper_j3 \
        --init_checkpoint=/data/retinanet_resnet50fpn_coco/ckpt-NNNN \
        --manual_dir=cuhk_sysu=/data/cuhk_sysu,prw=/data/PRW-v16.04.20,...

    python train.py --stage=features --preset=synthetic --model_dir=runs/synthetic_j3
    python train.py --stage=reid --preset=synthetic --model_dir=runs/synthetic_j3
    python train.py --stage=joint --preset=synthetic --model_dir=runs/synthetic_j3   # optional

Stages: `all` (the default: detection, features and reid in turn, then the search mAP / top-1 of
the joint model on the `reid.validation` dataset's test split, also written to
`<model_dir>/results.json`), `detection` (stage 1: the RetinaNet detector and the shared trunk),
`features` (the frozen stage-1 trunk's maps ROI-pooled at every labelled box of the re-ID datasets,
written to `<model_dir>/pooled/`) and `reid` (stage 2: the re-ID branch trained on the pooled
features with triplet losses, written to `<model_dir>/reid/`). Stages 2 and the pooling read the
stage-1 run in `--detection_model_dir` (default `--model_dir`) and take its image size, resize
mode and variant; `--stage=features --variant=J2` pools for another variant instead (the detector
is the same network for J2, J3 and J4, so one stage-1 run serves all three). `--variant=Disj`
trains the disjoint baseline instead (the paper's Table 1a "Disj."): `features` crops every
labelled box of the re-ID datasets from the images (256 x 128, uint8), `reid` trains a separate
ResNet-50 on the crops with the same triplet schedule (initialised from the stage-1 detector's
ResNet-50, or `--reid.initial_weights`), and the model it makes is searched, evaluated and exported
like a joint one:

    python train.py --variant=Disj --model_dir=runs/synthetic_disj                # all stages
    python train.py --stage=features --variant=Disj --model_dir=runs/disj \
        --detection_model_dir=runs/synthetic_j3          # then --stage=reid: reuses a detector

`joint` (optional: part of `all` only with `--joint_finetune`, which runs it after reid)
fine-tunes detector, shared trunk and re-ID branch together on L = L_det + L_reid, the re-ID
gradient reaching the shared layers (`ps_tf/training/joint_finetune.py`,
docs/joint_finetuning.md), from `<model_dir>/reid` into `<model_dir>/joint/`; evaluate.py,
search.py and the export then load the fine-tuned model from `--model_dir`.

A preset gives every setting, in four sections (`ps_tf/config.py`): `detection` (stage 1,
`DetectionConfig`), `reid` (pooling and stage 2, `ReidConfig`), `joint` (`JointConfig`) and
`pretrain` (`PretrainConfig`). Each setting is also a flag that overrides it, named by one rule:
the stage-1 settings are plain flags named as their fields (`--variant=J2 --image_size=320
--epochs=5`); every other setting is `--<section>.<field>` (`--reid.semi_hard_epochs=10
--reid.identities_per_batch=16 --reid.seed=1 --reid.validation= --joint.steps=100
--pretrain.steps=50`). A JSON settings file sets many at once, the same names in its sections
(`--config_file=my.json`, `{"detection": {"image_size": 512}, "reid": {"margin": 0.3}}`); flags
given on the command line override the file, the file overrides the preset. A former name
(`--reid_seed`, `--joint_steps`, `--margin`) is refused with its new one. Each command writes
the settings of all sections, resolved, to `<model_dir>/settings.json` (a `--config_file` that
reproduces the run), and each stage its own as `config.json` next to its checkpoints; rerunning
the same command resumes (pooling skips complete shards). Monitor with
`tensorboard --logdir=<model_dir>`.
"""

import ps_tf.quiet  # noqa: F401  (first: keeps TensorFlow's start-up noise off stderr)

import dataclasses
import functools
import json
import os
import shutil
import sys
import time
import typing

import tensorflow as tf
from absl import app, flags

import tfds_builders  # noqa: F401  (registers the ps_tf datasets)
from ps_tf import atomic
from ps_tf import commands
from ps_tf import config as config_lib
from ps_tf.data import datasets as datasets_lib
from ps_tf.data.pooled import manifest as pooled_manifest
from ps_tf.models import loading, stage2
from ps_tf.models.disjoint import DISJOINT
from ps_tf.training import detection
from ps_tf.training import distribution
from ps_tf.training import feature_pooling
from ps_tf.training import joint_finetune
from ps_tf.training import pretraining
from ps_tf.training import reid

FLAGS = flags.FLAGS
STAGES = ('pretrain', 'detection', 'features', 'reid')
flags.DEFINE_enum('stage', 'all', ['all', *STAGES, joint_finetune.STAGE],
                  'Training stage to run; all = detection, features, reid, then the search '
                  'metrics.')
flags.DEFINE_boolean('joint_finetune', False,
                     'all: run the optional joint fine-tuning (--stage=joint) after reid; the '
                     'search metrics are then the fine-tuned model\'s.')
flags.DEFINE_enum('preset', 'synthetic', sorted(config_lib.PRESETS), 'Settings preset.')
flags.DEFINE_string('config_file', None,
                    'JSON settings file applied over the preset, sections "detection", "reid", '
                    '"joint", "pretrain" of settings named as their fields, e.g. {"detection": '
                    '{"image_size": 512}, "reid": {"margin": 0.3}} (the flags --image_size and '
                    '--reid.margin); flags given on the command line override it. Every run '
                    'writes its resolved settings to <model_dir>/settings.json, which this flag '
                    'reads back.')
flags.DEFINE_string('model_dir', None, 'Checkpoints, config.json and TensorBoard logs.')
flags.DEFINE_string('data_dir', None, 'TFDS data dir (default ~/tensorflow_datasets).')
flags.DEFINE_string('manual_dir', None,
                    'Release folder(s) of manually downloaded datasets: one path, or '
                    '"name=path,name=path".')
flags.DEFINE_enum('strategy', distribution.AUTO, distribution.STRATEGIES,
                  'tf.distribute strategy of the training stages: auto (each stage\'s default: '
                  'stage 1 mirrored over the machine\'s devices, stage 2 and joint on one device; '
                  'mirrored with --num_cpu_devices), mirrored (MirroredStrategy over the '
                  'machine\'s GPUs, else its CPU), one_device, or multi_worker '
                  '(MultiWorkerMirroredStrategy over the workers of the TF_CONFIG environment '
                  'variable: run the same command on every worker, each with its own TF_CONFIG '
                  'task; stages detection, reid and joint; docs/scaling.md#multi-worker).')
flags.DEFINE_integer('num_cpu_devices', 0,
                     'Split the CPU into this many logical devices for MirroredStrategy (testing '
                     'the distributed path without GPUs); 0 = the machine as it is.')
flags.DEFINE_string('detection_model_dir', None,
                    'features/reid: the stage-1 run to read (default: --model_dir).')
flags.DEFINE_boolean('delete_pooled_after_reid', False,
                     'reid: delete <model_dir>/pooled once stage 2 has finished (the pooled '
                     'features are only needed to train it; CUHK-SYSU at J3 is ~7 GiB). A rerun '
                     'then neither pools nor trains again and reports the recorded metrics.')
flags.DEFINE_integer('num_workers', 1,
                     'features: processes (or machines sharing --model_dir) pooling one run '
                     'together; each runs this command with its own --worker_index.')
flags.DEFINE_integer('worker_index', 0, 'features: this process\'s index in [0, num_workers).')
flags.mark_flag_as_required('model_dir')

POOLED_DELETED = 'pooled_deleted.json'   # <model_dir>/: what was deleted and stage 2's metrics


def _define_setting_flags(section: str) -> None:
    """One flag per field of a section's dataclass (`config_lib.flag_name`: `--epochs` for stage
    1, `--reid.margin` for the others), default None = keep the preset's value; the help is the
    field's description in the class docstring, its section and its value in each preset."""
    config_class = config_lib.SECTIONS[section]
    hints = typing.get_type_hints(config_class)
    descriptions = config_lib.field_descriptions(config_class)
    for field in dataclasses.fields(config_class):
        kind = hints[field.name]
        name = config_lib.flag_name(section, field.name)
        help_text = (f'{descriptions[field.name]} [section {section} ({config_class.__name__}); '
                     f'presets: {config_lib.preset_values(section, field.name)}]')
        if kind is bool:
            flags.DEFINE_boolean(name, None, help_text)
        elif kind is int:
            flags.DEFINE_integer(name, None, help_text)
        elif kind is float:
            flags.DEFINE_float(name, None, help_text)
        else:
            flags.DEFINE_string(name, None, help_text)


for _section in config_lib.SECTIONS:
    _define_setting_flags(_section)


def _former_flags(argv: list[str]) -> list[str]:
    """'--reid_seed is now --reid.seed' for each flag of `argv` named as before the sections
    (`config_lib.FORMER_FLAGS`; booleans also as `--noname`)."""
    found = []
    for arg in argv[1:]:
        if arg == '--':
            break
        if not arg.startswith('-'):
            continue
        name = arg.lstrip('-').split('=', 1)[0]
        negated = (name not in config_lib.FORMER_FLAGS and name.startswith('no')
                   and FLAGS[config_lib.FORMER_FLAGS.get(name[2:], 'stage')].boolean)
        former = name[2:] if negated else name
        if former in config_lib.FORMER_FLAGS:
            new = ('no' if negated else '') + config_lib.FORMER_FLAGS[former]
            found.append(f'--{name} is now --{new}')
    return found


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's parsing, except that a flag named as before the sections (`--reid_seed`,
    `--joint_steps`, `--margin`) is a usage error naming its new flag instead of absl's unknown
    flag."""
    try:
        return FLAGS(argv)
    except flags.UnrecognizedFlagError as error:
        former = _former_flags(argv)
        if not former and error.flagname in config_lib.FORMER_FLAGS:   # from a --flagfile
            former = [f'--{error.flagname} is now --{config_lib.FORMER_FLAGS[error.flagname]}']
        if not former:
            return app.parse_flags_with_usage(argv)   # absl's own message and exit
        sys.stderr.write(
            f'FATAL Flags parsing error: {"; ".join(former)}. The settings of sections reid, '
            f'joint and pretrain are flags named <section>.<field> (--reid.margin, '
            f'--joint.steps); stage 1\'s keep their plain names (--epochs).\n'
            f'Pass --helpshort or --helpfull to see help on flags.\n')
        sys.exit(1)


@functools.lru_cache(maxsize=None)
def _file_settings(path: str | None) -> dict:
    """`--config_file`'s sections, read once per command ({} without a file)."""
    if not path:
        return {}
    try:
        return config_lib.read_settings_file(path)
    except ValueError as error:
        raise app.UsageError(str(error)) from error


def _experiment() -> config_lib.ExperimentConfig:
    """Every section's settings: the preset, then `--config_file`'s sections, then the flags
    given."""
    flag_settings = {
        section: {field.name: FLAGS[config_lib.flag_name(section, field.name)].value
                  for field in dataclasses.fields(config_class)}
        for section, config_class in config_lib.SECTIONS.items()}
    try:
        return config_lib.resolve(FLAGS.preset, _file_settings(FLAGS.config_file),
                                  flag_settings)
    except ValueError as error:
        raise app.UsageError(str(error)) from error


def _requested_variant() -> str | None:
    """The variant this command asks for (`--variant`, else the settings file's), None if
    neither says: pooling then takes the stage-1 run's."""
    if FLAGS.variant is not None:
        return FLAGS.variant
    return _file_settings(FLAGS.config_file).get('detection', {}).get('variant')


def _reid_config() -> config_lib.ReidConfig:
    """The preset's stage-2 settings with the settings file and this command's flags applied."""
    return _experiment().reid


def _delete_pooled(pooled_dir: str, metrics: dict) -> None:
    """Deletes the pooled features of a finished stage 2, recording what went and the metrics
    (so that a rerun of the command knows there is nothing left to do)."""
    size = sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(pooled_dir) for name in names)
    with open(os.path.join(pooled_dir, pooled_manifest.MANIFEST_NAME)) as file:   # what they were
        manifest = {key: value for key, value in json.load(file).items()
                    if key in ('variant', 'dtype', 'pooled_shape', 'source_checkpoint',
                               'num_records', 'datasets', 'metadata')}
    atomic.write_json(os.path.join(FLAGS.model_dir, POOLED_DELETED),
                      {'pooled_dir': pooled_dir, 'bytes': size, 'manifest': manifest,
                       'reid_metrics': metrics})
    shutil.rmtree(pooled_dir)
    print(f'deleted the pooled features ({size / 2**30:.2f} GiB): {pooled_dir}', flush=True)


def _pooled_deleted_after_reid() -> dict | None:
    """The record `_delete_pooled` left, if stage 2 finished and its features were deleted."""
    path = os.path.join(FLAGS.model_dir, POOLED_DELETED)
    reid_dir = os.path.join(FLAGS.model_dir, 'reid')
    if not os.path.exists(path) or not loading.finished_checkpoint(reid_dir):
        return None
    with open(path) as file:
        return json.load(file)


def _run_reid_stage(stage: str, manual_dir, strategy) -> dict:
    config = _reid_config()
    detection_model_dir = FLAGS.detection_model_dir or FLAGS.model_dir
    pooled_dir = os.path.join(FLAGS.model_dir, 'pooled')
    deleted = _pooled_deleted_after_reid()
    if deleted is not None and not os.path.isdir(pooled_dir):
        print(f'stage 2 has finished and its pooled features were deleted '
              f'(--delete_pooled_after_reid): nothing to {stage}', flush=True)
        return {} if stage == 'features' else deleted['reid_metrics']
    if stage == 'features':
        requested = _requested_variant()
        disjoint = requested == DISJOINT   # crops of the images: no trunk, any stage-1 run
        detector, detection_config, checkpoint = loading.restore_detector(
            detection_model_dir, variant=None if disjoint else requested)
        variant = DISJOINT if disjoint else detection_config.variant
        manifest = feature_pooling.pool_features(
            None if disjoint else detector.trunk, variant, detection_config.image_size,
            pooled_dir, datasets_lib.parse_dataset_list(config.datasets), checkpoint,
            split=config.split,
            dtype=stage2.record_dtype(variant, config.pooled_dtype),
            images_per_shard=config.images_per_shard, batch_size=config.pooling_batch_size,
            data_dir=FLAGS.data_dir, manual_dir=manual_dir,
            resize_mode=detection_config.resize_mode, num_workers=FLAGS.num_workers,
            worker_index=FLAGS.worker_index)
        if manifest is None:   # other workers still pool their shards
            return {'pooled_dir': pooled_dir, 'complete': False}
        return {'pooled_dir': pooled_dir, 'num_records': manifest.num_records,
                'num_identities': len(manifest.identity_map), 'complete': True}
    try:   # train_reid resolves it too; here a missing file is a usage error, not a traceback
        reid.resolve_initial_weights(config.initial_weights, detection_model_dir)
    except FileNotFoundError as error:
        raise app.UsageError(str(error)) from error
    metrics = reid.train_reid(config, os.path.join(FLAGS.model_dir, 'reid'), pooled_dir,
                              detection_model_dir, data_dir=FLAGS.data_dir,
                              manual_dir=manual_dir, strategy=strategy)
    if FLAGS.delete_pooled_after_reid and distribution.is_chief(strategy):
        _delete_pooled(pooled_dir, metrics)
    return metrics


def _detection_config() -> config_lib.DetectionConfig:
    """The preset's stage-1 settings with the settings file and this command's flags applied."""
    config = _experiment().detection
    if config.variant == DISJOINT:   # its detector: the preset's (any J* is the same)
        config = dataclasses.replace(config,
                                     variant=config_lib.PRESETS[FLAGS.preset].detection.variant)
    return config


def _pretrain_dir() -> str:
    return os.path.join(FLAGS.model_dir, 'pretrain')


def _run_stage(stage: str, manual_dir, strategy) -> dict:
    if stage == 'pretrain':
        config = _experiment().pretrain
        return pretraining.pretrain_backbone(config, _pretrain_dir(), data_dir=FLAGS.data_dir)
    if stage == 'detection':
        config = _detection_config()
        if config.weights == config_lib.PRETRAINED_WEIGHTS:
            weights = pretraining.weights_path(_pretrain_dir())
            if not os.path.exists(weights):
                raise app.UsageError(f'--weights={config_lib.PRETRAINED_WEIGHTS} starts from '
                                     f'{weights}, which does not exist: run --stage=pretrain '
                                     f'first (--stage=all does)')
            config = dataclasses.replace(config, weights=weights)
        return detection.train_detector(config, FLAGS.model_dir, data_dir=FLAGS.data_dir,
                                        manual_dir=manual_dir, strategy=strategy)
    if stage == joint_finetune.STAGE:
        return joint_finetune.train_joint(_joint_config(), FLAGS.model_dir,
                                          FLAGS.detection_model_dir, data_dir=FLAGS.data_dir,
                                          manual_dir=manual_dir, strategy=strategy)
    return _run_reid_stage(stage, manual_dir, strategy)


def _joint_config() -> config_lib.JointConfig:
    """The preset's joint fine-tuning settings with the settings file and this command's flags
    applied."""
    return _experiment().joint


def _write_settings() -> str:
    """Writes every section's resolved settings to `<model_dir>/settings.json` (the run's
    settings in one file, readable back with `--config_file`)."""
    path = os.path.join(FLAGS.model_dir, 'settings.json')
    tf.io.gfile.makedirs(FLAGS.model_dir)
    config_lib.write_settings(
        path, dataclasses.replace(_experiment(), detection=_detection_config()), FLAGS.preset)
    return path


def _run_all(manual_dir, strategy) -> dict:
    """detection -> features -> reid; each stage resumes (or skips) what a previous run did."""
    started = time.perf_counter()
    summary = {}
    stages = STAGES if _detection_config().weights == config_lib.PRETRAINED_WEIGHTS else STAGES[1:]
    stages += (joint_finetune.STAGE,) if FLAGS.joint_finetune else ()
    for number, stage in enumerate(stages, start=1):
        print(f'== {number}/{len(stages)} {stage}', flush=True)
        stage_started = time.perf_counter()
        metrics = _run_stage(stage, manual_dir, strategy)
        summary[f'{stage}_minutes'] = (time.perf_counter() - stage_started) / 60
        if stage == 'detection':
            summary.update({f'detection_{k}': v for k, v in metrics.items()})
        elif stage == 'reid':
            summary.update(metrics)
        elif stage == joint_finetune.STAGE:   # the fine-tuned model's metrics become the headline
            summary.update({f'two_step_{k}': summary[k] for k in metrics if k in summary})
            summary.update(metrics)
    summary['total_minutes'] = (time.perf_counter() - started) / 60
    path = os.path.join(FLAGS.model_dir, 'results.json')
    atomic.write_json(path, summary)
    if 'mAP' in summary:
        dataset = _reid_config().validation
        if FLAGS.joint_finetune and _joint_config().validation:
            dataset = _joint_config().validation
        gallery = f'gallery {summary["gallery_size"]}, ' if summary.get('gallery_size') else ''
        print(f'person search on {dataset}: mAP {summary["mAP"]:.4f}, top-1 {summary["top1"]:.4f}'
              f' ({gallery}detection AP {summary["det_ap"]:.4f}); '
              f'{summary["total_minutes"]:.1f} minutes; wrote {path}', flush=True)
    return summary


# The stages that train under --strategy=multi_worker (pooling has --num_workers instead).
MULTI_WORKER_STAGES = ('detection', 'reid', joint_finetune.STAGE)


def _build_strategy() -> tf.distribute.Strategy | None:
    """`--strategy`, built before any other TensorFlow op (a multi-worker strategy starts this
    process's server); None for `auto` (each stage's default)."""
    if FLAGS.strategy == distribution.MULTI_WORKER and FLAGS.stage not in MULTI_WORKER_STAGES:
        raise app.UsageError(
            f'--strategy=multi_worker trains --stage={"|".join(MULTI_WORKER_STAGES)}; run the '
            f'stages one at a time (--stage=features shares the pooling with --num_workers and '
            f'--worker_index instead), not --stage={FLAGS.stage}')
    try:
        strategy = distribution.build_strategy(FLAGS.strategy, FLAGS.num_cpu_devices)
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    print(f'strategy {FLAGS.strategy}: {distribution.describe(strategy)}', flush=True)
    return strategy


def main(argv):
    del argv
    strategy = _build_strategy()
    try:
        manual_dir = datasets_lib.parse_manual_dir(FLAGS.manual_dir)
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    if FLAGS.num_workers > 1 and FLAGS.stage != 'features':
        raise app.UsageError('--num_workers shares the feature pooling between processes: run '
                             'each worker with --stage=features, then --stage=reid once')
    if distribution.is_chief(strategy):   # the other workers of a multi-worker run write nothing
        _write_settings()
    if FLAGS.stage == 'all':
        metrics = _run_all(manual_dir, strategy)
    else:
        metrics = _run_stage(FLAGS.stage, manual_dir, strategy)
    print(json.dumps({'stage': FLAGS.stage, 'model_dir': FLAGS.model_dir, **metrics}))


def cli() -> None:
    """`ps-train`: parses the flags and runs."""
    commands.run(main, __name__, flags_parser=_parse_flags)


if __name__ == '__main__':
    cli()
