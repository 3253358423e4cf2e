"""The paper's three findings at CPU scale, on the synthetic datasets, over several seeds.

    python experiments/cpu_findings.py --root=runs/cpu_findings              # ~5 h on 2 cores
    python experiments/cpu_findings.py --root=runs/cpu_findings --pair_variants=J2 \
        --extra_flags="--epochs=2 --steps_per_epoch=150 --reid.semi_hard_epochs=5 \
                       --reid.hard_epochs=5"
                                                                         # ~2.5 h: RESULTS.md
    python experiments/cpu_findings.py --root=runs/cpu_findings --dry_run    # plan + estimate
    python experiments/cpu_findings.py --root=runs/cpu_findings --report_only

The synthetic configs stand in for the real datasets:

| paper | here |
|---|---|
| the re-ID dataset (CUHK-SYSU / PRW) | `synthetic_person_search/default` |
| extra detection-only data (MOT17Det, WIDER) | `synthetic_person_search/detection_only` |
| a domain never trained on (CUHK-SYSU in Table 1c) | `synthetic_person_search/domain_b` |

Per seed, two detection runs: "single" (default only: the paper's J*c, and J*p of Table 1c) and
"aggregated" (default + detection_only: J*, and J*m-w-p). The aggregated one serves `--variants`,
the single one `--pair_variants` (by default both J2, J3 and J4; the features stage re-splits the
same detector), so a seed trains 2 detectors and up to 6 re-ID branches. Every model is evaluated
on default, the pair variants also on domain_b, each with predicted and (--gt_boxes) ground-truth
gallery boxes. The findings then read:

1. sharing depth: J2 vs J3 vs J4 on default (aggregated detection, as Table 1a), plus the
   inference speed of each variant (`benchmarks/runtime_table.py`, untrained weights: speed does
   not depend on them);
2. aggregation: single vs aggregated detection data, same variant, on default (Table 1d);
3. cross-domain: the same pair evaluated on domain_b (Table 1c).

Seeds: `--seed` (detector initialisation, data order) and `--reid.seed` (sampler, embedding layer)
are both the seed. Steps resume (`step_runner.py`); `findings_report.py` writes RESULTS.md and the
plots from whatever has finished. `--quick` shrinks every run to a few steps (a plumbing check, not
a result); tests run it on tiny datasets.
"""

from __future__ import annotations

import os
import shlex
import sys

from absl import app, flags

import findings_report
import step_runner
from recipes import Step

VARIANTS = ('J2', 'J3', 'J4')
MIXES = ('single', 'aggregated')
SPEED_KEY = 'speed/runtime'
# Minutes on this project's 2-core machine when quiet (README: synthetic preset, J3): detection
# 17.6 for 1,625 images x 3.5 epochs (scaled by the number of training images), pooling 0.6,
# re-ID 6.4 (scaled by the replicated stages' FLOPs: J2 C3-C5 1.45x, J4 C5 0.36x of J3's C4-C5),
# an evaluation ~1 (model load, ~200 gallery images, 60 queries), the speed table ~5.
PRESET_BATCH, PRESET_EPOCHS = 8, 3.5                  # the synthetic detection preset
MINUTES_DETECTION_PER_STEP = 17.6 / (1625 / PRESET_BATCH * PRESET_EPOCHS)
PRESET_REID_EPOCHS, PRESET_REID_STEPS_PER_EPOCH = 16, 25
MINUTES_POOLING = {'J2': 1.0, 'J3': 0.6, 'J4': 0.5}
MINUTES_REID = {'J2': 9.3, 'J3': 6.4, 'J4': 2.3}
MINUTES_EVALUATION = 1.0
MINUTES_SPEED = 5.0
TRAINING_IMAGES = {'synthetic_person_search/default': 1625,
                   'synthetic_person_search/detection_only': 400}
# The findings in RESULTS.md trained the whole trunk from scratch, the synthetic preset's recipe
# before it started from attribute pretraining with the shared blocks frozen; kept, so that the
# plan reproduces them.
DETECTION_TRUNK = ('--weights=none', '--nofreeze_shared_trunk')
# ... and stage 2 started from the detector's stages (there is no pretraining to start from).
REID_START = '--reid.initial_weights=detector'
# Two detection steps at a small learning rate (the preset's 0.02 without warm-up can blow the
# untrained trunk's maps past float16 on tiny data), float32 pooled features.
QUICK_TRAIN_FLAGS = ('--image_size=64 --batch_size=2 --epochs=1 --steps_per_epoch=2 '
                     '--base_learning_rate=0.001 --reid.pooled_dtype=float32 '
                     '--mixed_precision=float32 --reid.mixed_precision=float32 '
                     '--reid.images_per_shard=8 --reid.pooling_batch_size=4 '
                     '--reid.embedding_dim=8 --reid.identities_per_batch=2 '
                     '--reid.samples_per_identity=2 --reid.semi_hard_epochs=1 '
                     '--reid.hard_epochs=1 --reid.steps_per_epoch=1 --validation_images=2')
QUICK_SPEED_FLAGS = '--image_size=64 --batch_sizes=1 --people=2 --repeats=1 --warmup=0'

flags.DEFINE_string('root', None, 'Output root (seed<N>/..., speed/, logs/, done/).')
flags.DEFINE_integer('seeds', 3, 'Seeds 0..N-1.')
flags.DEFINE_list('run_seeds', None, 'Run only these of the seeds (default: all), to split the '
                  'work between processes or machines sharing --root; the report covers all.')
flags.DEFINE_list('variants', list(VARIANTS), 'Variants trained on the aggregated detector '
                  '(finding 1).')
flags.DEFINE_list('pair_variants', None, 'Variants also trained on the single detector and '
                  'evaluated on the unseen domain (findings 2 and 3); default: --variants.')
flags.DEFINE_enum('gt_boxes', 'all', findings_report.GT_CHOICES, 'Which models are also '
                  'evaluated with ground-truth gallery boxes (Table 1d right): all, the pair '
                  'variants only, or none.')
flags.DEFINE_string('default_dataset', 'synthetic_person_search/default',
                    'Detection and re-ID dataset, evaluated on (the paper\'s CUHK-SYSU / PRW).')
flags.DEFINE_string('extra_detection_dataset', 'synthetic_person_search/detection_only',
                    'Added to detection in the aggregated runs (MOT17Det, WIDER).')
flags.DEFINE_string('unseen_dataset', 'synthetic_person_search/domain_b',
                    'Cross-domain evaluation, never trained on.')
flags.DEFINE_integer('gallery', 100, 'CUHK-SYSU-style gallery size reported (a dataset without '
                     'it reports its largest).')
flags.DEFINE_boolean('speed', True, 'Also measure each variant\'s speed (benchmarks/'
                     'runtime_table.py).')
flags.DEFINE_boolean('quick', False, 'A few steps per run: checks the pipeline, not the findings.')
flags.DEFINE_boolean('dry_run', False, 'Print the plan, its commands and the time estimate.')
flags.DEFINE_boolean('report_only', False, 'Only write the report from what has finished.')
flags.DEFINE_string('results', None, 'The report (default: experiments/RESULTS.md; with '
                    '--quick: <root>/RESULTS.md); plots go beside it.')
flags.DEFINE_string('data_dir', None, 'TFDS data dir.')
flags.DEFINE_string('manual_dir', None, 'Release folders, if a dataset flag names a real one.')
flags.DEFINE_string('discussion', None, 'A markdown file with the reading of the results, put '
                    'into RESULTS.md after its introduction.')
flags.DEFINE_string('extra_flags', '', 'Appended to every train.py command.')
flags.mark_flag_as_required('root')
FLAGS = flags.FLAGS


def detection_datasets(mix: str) -> list[str]:
    extra = [FLAGS.extra_detection_dataset] if mix == 'aggregated' else []
    return [FLAGS.default_dataset] + extra


def plan(seeds: list[int], variants: list[str], pair_variants: list[str], speed: bool,
         gt_boxes: str) -> list[Step]:
    """Every step, in run order: building the datasets; per seed, each mix's detection, then its
    variants' features, re-ID and evaluations (default, default with GT boxes, unseen); then the
    speed table. The single mix trains only `pair_variants`; only they are evaluated unseen."""
    default, unseen = FLAGS.default_dataset, FLAGS.unseen_dataset
    # Every dataset built up front (evaluate.py reads prepared datasets only; a missing one fails
    # here, not hours in).
    datasets = dict.fromkeys([default, FLAGS.extra_detection_dataset, unseen])
    steps = [Step('prepare/findings', step_runner.PREPARE, ('--datasets=' + ','.join(datasets),))]
    for seed in seeds:
        base = f'seed{seed}'
        for mix in MIXES:
            detection_dir = f'{{root}}/{base}/detection/{mix}'
            spec = ','.join(f'{name}:1' for name in detection_datasets(mix))
            steps.append(Step(f'{base}/detection/{mix}', step_runner.TRAIN, (
                '--stage=detection', '--preset=synthetic', '--variant=J3',
                *DETECTION_TRUNK, f'--model_dir={detection_dir}', f'--datasets={spec}',
                f'--validation={default}:gallery', f'--seed={seed}')))
            for variant in findings_report.mix_variants(mix, variants, pair_variants):
                name = f'{mix}_{variant}'
                common = ('--preset=synthetic', f'--variant={variant}',
                          f'--model_dir={{root}}/{base}/reid/{name}',
                          f'--detection_model_dir={detection_dir}', f'--reid.datasets={default}',
                          '--reid.validation=', f'--reid.seed={seed}', REID_START)
                steps.append(Step(f'{base}/reid/{name}:features', step_runner.TRAIN,
                                  ('--stage=features',) + common))
                steps.append(Step(f'{base}/reid/{name}:reid', step_runner.TRAIN,
                                  ('--stage=reid',) + common))
                for evaluation in findings_report.planned_evaluations(
                        default, unseen, gt_boxes=gt_boxes, pair=variant in pair_variants):
                    output = findings_report.eval_output(base, name, evaluation)
                    args = (f'--dataset={evaluation.dataset}',
                            f'--checkpoint={{root}}/{base}/reid/{name}',
                            f'--output_json={{root}}/{output}')
                    steps.append(Step(output.removesuffix('.json'), step_runner.EVALUATE,
                                      args + (('--use_gt_boxes',) if evaluation.gt else ())))
    if speed:
        steps.append(Step(SPEED_KEY, 'benchmarks/runtime_table.py', (
            '--image_size=320', '--batch_sizes=1', '--people=5,20',
            '--models=' + ','.join([*variants, 'Disj']), '--precisions=float32',
            f'--output_json={{root}}/{findings_report.SPEED_JSON}')))
    return steps


def _flag_values(arguments: list[str]) -> dict[str, str]:
    """{'epochs': '2', ...} from '--epochs=2'-style arguments (the last one wins, as in absl)."""
    return dict(arg[2:].split('=', 1) for arg in arguments if arg.startswith('--') and '=' in arg)


def estimate_minutes(step: Step, extra_flags: list[str] = ()) -> float:
    """The step's expected minutes on 2 quiet cores at the synthetic preset, scaled by any
    schedule flags in `extra_flags` (detection steps, re-ID epochs)."""
    if step.key == SPEED_KEY:
        return MINUTES_SPEED
    if step.script == step_runner.PREPARE:
        return 1.0
    if step.script == step_runner.EVALUATE:
        return MINUTES_EVALUATION
    overrides = _flag_values(list(extra_flags))
    variant = next(a.split('=')[1] for a in step.args if a.startswith('--variant='))
    if '--stage=detection' in step.args:
        mix = step.key.rsplit('/', 1)[1]
        images = sum(TRAINING_IMAGES.get(name, 1625) for name in detection_datasets(mix))
        steps_per_epoch = int(overrides.get('steps_per_epoch', 0)) or images / PRESET_BATCH
        steps = float(overrides.get('epochs', PRESET_EPOCHS)) * steps_per_epoch
        return MINUTES_DETECTION_PER_STEP * steps
    if '--stage=features' in step.args:
        return MINUTES_POOLING[variant]
    epochs = (float(overrides.get('reid.semi_hard_epochs', PRESET_REID_EPOCHS / 2))
              + float(overrides.get('reid.hard_epochs', PRESET_REID_EPOCHS / 2)))
    steps_per_epoch = (int(overrides.get('reid.steps_per_epoch', 0))
                       or PRESET_REID_STEPS_PER_EPOCH)
    return MINUTES_REID[variant] * epochs * steps_per_epoch / (
        PRESET_REID_EPOCHS * PRESET_REID_STEPS_PER_EPOCH)


def _settings(quick: bool) -> step_runner.CommandSettings:
    extra = shlex.split(FLAGS.extra_flags)
    if quick:
        extra = shlex.split(QUICK_TRAIN_FLAGS) + extra
    return step_runner.CommandSettings(
        root=os.path.abspath(FLAGS.root), data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir,
        extra_train_flags=tuple(extra))


def _command(step: Step, settings: step_runner.CommandSettings, quick: bool) -> list[str]:
    argv = step_runner.command(step.script, step.args, settings)
    if step.key == SPEED_KEY and quick:
        argv += shlex.split(QUICK_SPEED_FLAGS)
    return argv


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    unknown = sorted(set(FLAGS.variants + (FLAGS.pair_variants or [])) - set(VARIANTS))
    if unknown or FLAGS.seeds < 1:
        raise app.UsageError(f'--variants must be of {VARIANTS} (got {unknown}), --seeds >= 1')
    settings = _settings(FLAGS.quick)
    discussion = _discussion()   # read before hours of runs: a wrong path fails now
    pair_variants = FLAGS.pair_variants or FLAGS.variants
    seeds = [int(seed) for seed in FLAGS.run_seeds] if FLAGS.run_seeds else range(FLAGS.seeds)
    if not set(seeds) <= set(range(FLAGS.seeds)):
        raise app.UsageError(f'--run_seeds must be of 0..{FLAGS.seeds - 1}')
    steps = plan(list(seeds), FLAGS.variants, pair_variants, FLAGS.speed, FLAGS.gt_boxes)
    total = sum(estimate_minutes(step, settings.extra_train_flags) for step in steps)
    print(f'plan: {len(seeds)} of {FLAGS.seeds} seeds x {len(MIXES)} detection runs; variants '
          f'{",".join(FLAGS.variants)} (single detection: {",".join(pair_variants)}): '
          f'{len(steps)} steps; estimated {total:.0f} min ({total / 60:.1f} h) on 2 '
          f'quiet cores at the synthetic preset' + (' (--quick: far less)' if FLAGS.quick else ''))
    results = FLAGS.results or (os.path.join(settings.root, 'RESULTS.md') if FLAGS.quick else
                                os.path.join(step_runner.REPOSITORY, 'experiments', 'RESULTS.md'))
    if FLAGS.dry_run:
        for step in steps:
            print(f'# {step.key} (~{estimate_minutes(step, settings.extra_train_flags):.1f} min)\n'
                  f'{step_runner.display(_command(step, settings, FLAGS.quick))}')
        return
    failure = None
    if not FLAGS.report_only:
        failure = step_runner.run_all(
            [(step.key, _command(step, settings, FLAGS.quick)) for step in steps], settings.root)
    commands = [step_runner.display(_command(step, settings, FLAGS.quick)) for step in steps]
    findings_report.write_report(
        results, settings.root, seeds=FLAGS.seeds, variants=FLAGS.variants,
        pair_variants=pair_variants, gt_boxes=FLAGS.gt_boxes,
        extra_flags=' '.join(shlex.split(FLAGS.extra_flags)), discussion=discussion,
        default=FLAGS.default_dataset, unseen=FLAGS.unseen_dataset, gallery=FLAGS.gallery,
        invocation=step_runner.display([sys.executable, 'experiments/cpu_findings.py']
                                       + argv_flags()),
        commands=commands, quick=FLAGS.quick, estimate_minutes=total)
    print(f'wrote {results}')
    if failure:
        print(failure, file=sys.stderr)
        sys.exit(1)


def _discussion() -> str:
    if not FLAGS.discussion:
        return ''
    if not os.path.isfile(FLAGS.discussion):
        raise app.UsageError(f'--discussion: no such file: {FLAGS.discussion}')
    with open(FLAGS.discussion) as stream:
        return stream.read()


def argv_flags() -> list[str]:
    """This run's flags as given (for the report)."""
    return [arg for arg in sys.argv[1:] if arg.startswith('--')]


if __name__ == '__main__':
    app.run(main)
