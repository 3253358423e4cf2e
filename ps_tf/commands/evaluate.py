"""`ps-evaluate`: detection AP/recall and the CUHK-SYSU or PRW search protocol.

(`python evaluate.py` in a checkout runs the same program.)

Scores a predictions file (`ps_tf/evaluation/predictions.py`; docs/formats.md#predictions-file)
against the protocol data of a prepared TFDS dataset of the shared schema:

    python evaluate.py --dataset=synthetic_person_search/default --data_dir=~/tensorflow_datasets \
        --predictions=preds.npz --output_json=metrics.json
    python evaluate.py --dataset=cuhk_sysu --predictions=preds.npz --gallery_sizes=100
    python evaluate.py --dataset=prw --predictions=preds.npz --multi_view
    python evaluate.py --dataset=prw --predictions=preds.npz --det_thresh=0 \
        --max_detections_per_image=1,3,5,10     # the paper's PRW setting: best of the caps
    python evaluate.py --dataset=prw --predictions=preds.npz --protocol=prw_official

or computes the predictions with a trained model first (the joint model of `train.py`: detection,
then an embedding for every detection and every query box):

    python evaluate.py --dataset=synthetic_person_search/default --checkpoint=runs/synthetic_j3
    python evaluate.py --dataset=synthetic_person_search/default --checkpoint=runs/synthetic_j3 \
        --use_gt_boxes --write_predictions=gt_boxes.npz

`--checkpoint` takes a train.py model_dir, its `reid/` directory or one stage-2 checkpoint
(`.../reid/checkpoints/ckpt-N`); `--saved_model` an export of `export/export_saved_model.py`
(scored at the detection settings it was exported with):

    python evaluate.py --dataset=synthetic_person_search/default --saved_model=runs/demo/exported
 `--use_gt_boxes` embeds the gallery's ground-truth boxes instead of
the detections (the paper's Table 1d, right: re-ID quality without detection errors).

The protocol follows from the dataset (queries with gallery lists: CUHK-SYSU style, otherwise
PRW style) unless --protocol says otherwise (`prw_official`: Zheng et al.'s MATLAB protocol).
Prints a table and writes JSON with one entry per gallery: mAP, top1, top5, top10, det_ap,
det_recall (fractions in 0-1 in both, as train.py prints them) plus the settings.

`--max_detections_per_image` caps the gallery detections of each image (after --det_thresh). With
a list of values it is a sweep: one row per value and gallery, the best of each gallery (highest
mAP) marked; the JSON keeps every row under `results` (each with `max_detections_per_image` and
`best_of_sweep`) and adds `best` (the best rows) and `sweep` (the values and the criterion).
"""

from __future__ import annotations

import ps_tf.quiet  # noqa: F401  (first: keeps TensorFlow's start-up noise off stderr)

import os

from absl import app
from absl import flags

from ps_tf import atomic
from ps_tf import commands
from ps_tf.evaluation.evaluator import SEARCH_SCORE_THRESHOLD

FULL_SET_NAMES = ('full', 'all', '-1')

flags.DEFINE_string('dataset', None, 'TFDS dataset (with config), e.g. synthetic_person_search, '
                    'synthetic_person_search/tiny, cuhk_sysu, prw.')
flags.DEFINE_string('data_dir', None, 'TFDS data directory (default: the TFDS default).')
flags.DEFINE_string('predictions', None, 'Predictions file (.npz) to score.')
flags.DEFINE_string('checkpoint', None, 'Compute the predictions with this trained model: a '
                    'train.py model_dir, its reid/ directory, or a stage-2 checkpoint '
                    '(.../reid/checkpoints/ckpt-N).')
flags.DEFINE_boolean('use_gt_boxes', False, 'With --checkpoint or --saved_model: embed the '
                     'ground-truth gallery boxes (score 1) instead of detections.')
flags.DEFINE_integer('batch_size', 8, 'With --checkpoint or --saved_model: images per forward '
                     'pass.')
flags.DEFINE_enum('inference_precision', 'trained',
                  ['trained', 'auto', 'float32', 'bfloat16', 'float16'],
                  'With --checkpoint: compute precision of the model; trained = what each stage '
                  'was trained in, auto = bfloat16 on GPUs of compute capability >= 8.0 and on '
                  'CPUs with bfloat16 units (AVX-512 BF16, AMX), float16 on older GPUs, else '
                  'float32.')
flags.DEFINE_string('write_predictions', None, 'With --checkpoint or --saved_model: also write '
                    'the predictions file (.npz) here.')
flags.DEFINE_string('saved_model', None, 'Compute the predictions with an exported SavedModel '
                    '(export/export_saved_model.py: its directory or a folder of numbered '
                    'versions), at the detection settings it was exported with.')
flags.DEFINE_list('gallery_sizes', [], 'CUHK-SYSU-style gallery sizes, e.g. 100 or '
                  '50,100,500,1000,2000,4000,full. Default: every size the dataset defines, then '
                  'the full set. Ignored by the PRW protocol.')
flags.DEFINE_float('det_thresh', SEARCH_SCORE_THRESHOLD,
                   'Search: gallery detections with score >= this are ranked.')
flags.DEFINE_list('max_detections_per_image', [], 'Search: keep at most N detections of each '
                  'gallery image (its highest-scoring ones), after --det_thresh (use '
                  '--det_thresh=0 for the cap alone). Several values (e.g. 1,3,5,10): a sweep, '
                  'one row per value, the best by mAP marked (the paper\'s PRW setting). '
                  'Default: no cap.')
flags.DEFINE_float('detection_metric_thresh', 0.01, 'Detection AP/recall: detections with score '
                   '>= this are scored (0.01 is what SeqNet/NAE/COAT report).')
flags.DEFINE_boolean('dedupe_gallery', True, 'Rank an image listed twice in a gallery once '
                     '(SeqNet/COAT) rather than once per entry (OIM/NAE).')
flags.DEFINE_boolean('multi_view', False, 'PRW: multi-view (cross-camera) gallery, without any '
                     'frame of the query camera.')
flags.DEFINE_enum('protocol', 'auto', ['auto', 'cuhk_sysu', 'prw', 'prw_official'],
                  'Search protocol; auto = cuhk_sysu when the queries carry gallery lists, else '
                  'prw (SeqNet\'s). prw_official: Zheng et al.\'s original PRW protocol '
                  '(cross-camera matches only, junk boxes, missed people lower recall, '
                  'trapezoid AP).')
flags.DEFINE_enum('box_convention', 'auto', ['auto', 'truncate', 'seqnet_prw'], 'Ground-truth '
                  'box convention; auto = seqnet_prw for PRW(-style) data, else truncate.')
flags.DEFINE_string('output_json', None, 'Write the metrics and settings here.')

FLAGS = flags.FLAGS


def _gallery_sizes(values: list[str]) -> list[int] | None:
    from ps_tf.evaluation import cuhk_sysu
    if not values:
        return None
    sizes = []
    for value in values:
        if value.strip().lower() in FULL_SET_NAMES:
            sizes.append(cuhk_sysu.FULL_SET)
        else:
            try:
                sizes.append(int(value))
            except ValueError:
                raise app.UsageError(f'--gallery_sizes: {value!r} is neither a size nor "full"')
    return sizes


def _max_detections(values: list[str]) -> list[int]:
    """The --max_detections_per_image values as ints (empty: no cap)."""
    caps = []
    for value in values:
        try:
            caps.append(int(value))
        except ValueError:
            raise app.UsageError(f'--max_detections_per_image: {value!r} is not an integer')
        if caps[-1] < 1:
            raise app.UsageError(f'--max_detections_per_image: {value!r} is not >= 1 (a cap of '
                                 f'N detections per image needs N >= 1)')
    if len(set(caps)) != len(caps):
        raise app.UsageError(f'--max_detections_per_image: {",".join(values)} lists a value '
                             f'twice')
    return caps


def _predict_with_checkpoint():
    """The predictions of the joint model at --checkpoint on --dataset (written on request)."""
    import tfds_builders  # noqa: F401  (registers the ps_tf datasets)
    from ps_tf import evaluation
    from ps_tf.evaluation import inference
    from ps_tf.models import loading

    reid_dir, checkpoint = loading.locate_stage2(FLAGS.checkpoint)
    precision = None if FLAGS.inference_precision == 'trained' else FLAGS.inference_precision
    joint, image_size, resize_mode = loading.load_joint_model(reid_dir, checkpoint,
                                                              precision=precision)
    print(f'computing predictions on {FLAGS.dataset} with {checkpoint or reid_dir} '
          f'({"ground-truth gallery boxes" if FLAGS.use_gt_boxes else "detections"}, '
          f'{FLAGS.inference_precision} precision)', flush=True)
    arrays = inference.predict_dataset(joint, FLAGS.dataset, image_size, FLAGS.batch_size,
                                       use_gt_boxes=FLAGS.use_gt_boxes, data_dir=FLAGS.data_dir,
                                       resize_mode=resize_mode)
    predictions = evaluation.Predictions(**arrays)
    if FLAGS.write_predictions:
        evaluation.write_predictions(FLAGS.write_predictions, predictions)
        print(f'wrote {FLAGS.write_predictions}')
    return predictions


def _predict_with_saved_model():
    """The predictions of the SavedModel at --saved_model on --dataset (written on request)."""
    import tfds_builders  # noqa: F401  (registers the ps_tf datasets)
    from ps_tf import evaluation
    from ps_tf.evaluation import saved_model_inference

    signatures = saved_model_inference.load_signatures(FLAGS.saved_model)
    print(f'computing predictions on {FLAGS.dataset} with the SavedModel {FLAGS.saved_model} '
          f'({"ground-truth gallery boxes" if FLAGS.use_gt_boxes else "detections"})', flush=True)
    arrays = saved_model_inference.predict_dataset(signatures, FLAGS.dataset, FLAGS.batch_size,
                                                   use_gt_boxes=FLAGS.use_gt_boxes,
                                                   data_dir=FLAGS.data_dir)
    predictions = evaluation.Predictions(**arrays)
    if FLAGS.write_predictions:
        evaluation.write_predictions(FLAGS.write_predictions, predictions)
        print(f'wrote {FLAGS.write_predictions}')
    return predictions


def run(argv_unused=None) -> list[dict]:
    """Evaluates as the flags say; returns the result rows (also printed and written)."""
    from ps_tf import evaluation

    sources = [name for name in ('predictions', 'checkpoint', 'saved_model') if FLAGS[name].value]
    if not FLAGS.dataset or len(sources) != 1:
        raise app.UsageError('--dataset and exactly one of --predictions, --checkpoint or '
                             '--saved_model are required')
    source_flag = sources[0]
    if FLAGS.use_gt_boxes and source_flag == 'predictions':
        raise app.UsageError('--use_gt_boxes needs --checkpoint or --saved_model (a predictions '
                             'file is fixed)')
    caps = _max_detections(FLAGS.max_detections_per_image)
    convention = None if FLAGS.box_convention == 'auto' else FLAGS.box_convention
    protocol = evaluation.load_protocol(FLAGS.dataset, FLAGS.data_dir, box_convention=convention)
    if source_flag == 'checkpoint':
        predictions = _predict_with_checkpoint()
    elif source_flag == 'saved_model':
        predictions = _predict_with_saved_model()
    else:
        predictions = evaluation.read_predictions(FLAGS.predictions)
    source = os.path.abspath(FLAGS[source_flag].value)
    settings = evaluation.EvalSettings(
        gallery_sizes=_gallery_sizes(FLAGS.gallery_sizes),
        det_thresh=FLAGS.det_thresh,
        detection_metric_thresh=FLAGS.detection_metric_thresh,
        dedupe_gallery=FLAGS.dedupe_gallery,
        multi_view=FLAGS.multi_view,
        protocol_style=None if FLAGS.protocol == 'auto' else FLAGS.protocol,
    )
    sweep_fields = {}
    if caps:
        from ps_tf.evaluation import sweep
        rows, best = sweep.evaluate_sweep(protocol, predictions, settings, caps)
        # The best rows are also in `results` (flagged best_of_sweep).
        sweep_fields = {'best': best, 'sweep': {'setting': sweep.SETTING, 'values': caps,
                                                'selected_by': sweep.SELECTED_BY}}
    else:
        rows = evaluation.evaluate_predictions(protocol, predictions, settings)
    for row in rows:
        row[source_flag] = source
        if source_flag != 'predictions':
            row['use_gt_boxes'] = FLAGS.use_gt_boxes
        if source_flag == 'checkpoint':
            row['inference_precision'] = FLAGS.inference_precision
        row['box_convention'] = protocol.box_convention
    print(evaluation.format_table(rows))
    if FLAGS.output_json:
        atomic.write_json(FLAGS.output_json,
                          {'dataset': protocol.dataset, 'results': rows, **sweep_fields},
                          sort_keys=False)
        print(f'wrote {FLAGS.output_json}')
    return rows


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    try:
        run()
    except ValueError as error:   # a predictions file or setting that does not fit the dataset
        raise app.UsageError(str(error)) from error


def cli() -> None:
    """`ps-evaluate`: parses the flags and runs."""
    commands.run(main, __name__)


if __name__ == '__main__':
    cli()
