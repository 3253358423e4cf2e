"""How far are a model's gallery detections from the ground-truth boxes?

Search with predicted boxes embeds the detections, and the queries' ground-truth boxes; a
re-ID network trained only on ground-truth boxes sees the shifted, resized detections as new
inputs. This script matches each labelled gallery box (person id >= 0) to the highest-IoU
detection of its image that search keeps (score >= the evaluator's 0.5) and reports the IoU
and the box errors of the matched ones: log(width ratio), log(height ratio), and the centre
offset as a fraction of the ground-truth width and height, by person height. Their spread is
the box jitter a re-ID network would have to tolerate.

    python evaluate.py --dataset=synthetic_person_search --checkpoint=runs/demo/model \\
        --gallery_sizes=100 --write_predictions=runs/demo/det.npz
    python experiments/box_errors.py --dataset=synthetic_person_search \\
        --predictions=runs/demo/det.npz
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

FLAGS = flags.FLAGS


def define_flags():
    """The CLI's flags, defined only when run as a script (the tests import this module beside
    other experiment scripts with flags of the same names)."""
    flags.DEFINE_string('dataset', 'synthetic_person_search/default', 'TFDS dataset[/config].')
    flags.DEFINE_string('data_dir', None, 'TFDS data dir (None = the TFDS default).')
    flags.DEFINE_string('predictions', None, 'Predictions file (.npz) of `evaluate.py '
                        '--write_predictions`.')
    flags.DEFINE_float('min_iou', 0.5, 'A ground-truth box counts as found when its best detection '
                       'overlaps it at least this much.')
    flags.DEFINE_string('output_json', None, 'Also write the figures here.')


HEIGHT_BINS = (0, 60, 100, 150)   # person height, pixels: < 60, 60-100, 100-150, >= 150
ERRORS = ('log_w', 'log_h', 'dx', 'dy')


def matched_box_errors(gallery, det_image: np.ndarray, det_boxes: np.ndarray,
                       det_scores: np.ndarray, det_thresh: float) -> dict[str, np.ndarray]:
    """For every labelled gallery box: its best detection's IoU, and that detection's errors.

    Args:
        gallery: `protocol.GalleryAnnotations`.
        det_image: (D,) gallery image of each detection (protocol order).
        det_boxes: (D, 4) pixel x1, y1, x2, y2.
        det_scores: (D,) scores; detections below `det_thresh` are dropped, as search does
            (the evaluator's `EvalSettings().det_thresh`).

    Returns:
        'iou', 'height' and the `ERRORS` ((K,) each, K labelled boxes; an image without a kept
        detection gives IoU 0 and NaN errors): log_w / log_h = log(detection / ground-truth
        width / height), dx / dy = centre offset / ground-truth width / height.
    """
    from ps_tf.evaluation.boxes import paired_iou
    keep = det_scores >= det_thresh
    out = {key: [] for key in ('iou', 'height') + ERRORS}
    box_image = gallery.box_image
    for k in np.flatnonzero((gallery.person_ids >= 0) & ~gallery.ignore):
        gt = gallery.boxes[k]
        candidates = det_boxes[keep & (det_image == box_image[k])]
        width, height = gt[2] - gt[0], gt[3] - gt[1]
        out['height'].append(height)
        if not len(candidates):
            out['iou'].append(0.0)
            for key in ERRORS:
                out[key].append(np.nan)
            continue
        overlaps = paired_iou(np.broadcast_to(gt, candidates.shape), candidates)
        best = candidates[overlaps.argmax()]
        out['iou'].append(overlaps.max())
        out['log_w'].append(np.log((best[2] - best[0]) / width))
        out['log_h'].append(np.log((best[3] - best[1]) / height))
        out['dx'].append((best[0] + best[2] - gt[0] - gt[2]) / 2 / width)
        out['dy'].append((best[1] + best[3] - gt[1] - gt[3]) / 2 / height)
    return {key: np.asarray(value, np.float64) for key, value in out.items()}


def summarise(errors: dict[str, np.ndarray], min_iou: float) -> list[dict]:
    """Rows (all people, then each height bin): found fraction, IoU and error mean / std of the
    boxes found (best IoU >= `min_iou`)."""
    edges = HEIGHT_BINS + (np.inf,)
    bins = [('all', np.ones(len(errors['iou']), bool))] + [
        (f'h {lo}-{hi}' if hi < np.inf else f'h >={lo}',
         (errors['height'] >= lo) & (errors['height'] < hi)) for lo, hi in zip(edges, edges[1:])]
    rows = []
    for name, members in bins:
        found = members & (errors['iou'] >= min_iou)
        row = {'people': name, 'boxes': int(members.sum()),
               'found': float(found.sum() / max(members.sum(), 1))}
        if found.any():
            row['mean_iou'] = float(errors['iou'][found].mean())
            for key in ERRORS:
                row[f'{key}_mean'] = float(errors[key][found].mean())
                row[f'{key}_std'] = float(errors[key][found].std())
        rows.append(row)
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = ['people     boxes  found  IoU    ' + '  '.join(f'{k:>13s}' for k in ERRORS)]
    for row in rows:
        if 'mean_iou' not in row:
            lines.append(f'{row["people"]:10s} {row["boxes"]:5d}  {row["found"]:.2f}   -')
            continue
        errors = '  '.join(f'{row[k + "_mean"]:+.3f}±{row[k + "_std"]:.3f}' for k in ERRORS)
        lines.append(f'{row["people"]:10s} {row["boxes"]:5d}  {row["found"]:.2f}   '
                     f'{row["mean_iou"]:.3f}  {errors}')
    return '\n'.join(lines)


def main(argv):
    del argv
    if not FLAGS.predictions:
        raise app.UsageError('--predictions is required (from evaluate.py --write_predictions)')
    from ps_tf.evaluation import evaluator
    from ps_tf.evaluation import predictions as predictions_lib
    from ps_tf.evaluation import protocol as protocol_lib
    protocol = protocol_lib.load_protocol(FLAGS.dataset, FLAGS.data_dir)
    predictions = predictions_lib.read_predictions(FLAGS.predictions)
    det_image = predictions.aligned_to(protocol.gallery.names, len(protocol.queries))
    det_thresh = evaluator.EvalSettings().det_thresh
    errors = matched_box_errors(protocol.gallery, det_image, predictions.det_boxes,
                                predictions.det_scores, det_thresh)
    rows = summarise(errors, FLAGS.min_iou)
    print(f'{FLAGS.predictions}: labelled gallery boxes against their best detection '
          f'(score >= {det_thresh}; found = IoU >= {FLAGS.min_iou}; errors: mean ± std over found)')
    print(format_rows(rows))
    if FLAGS.output_json:
        with open(FLAGS.output_json, 'w') as f:
            json.dump({'predictions': FLAGS.predictions, 'dataset': FLAGS.dataset,
                       'rows': rows}, f, indent=1)


if __name__ == '__main__':
    define_flags()
    app.run(main)
