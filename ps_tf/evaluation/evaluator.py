"""Scores a predictions file against a dataset's protocol: detection metrics plus search metrics
for every requested gallery, as the rows `evaluate.py` prints and writes to JSON."""

from __future__ import annotations

import dataclasses
import time
from typing import Sequence

from absl import logging

from ps_tf.evaluation import cuhk_sysu
from ps_tf.evaluation import detection
from ps_tf.evaluation import predictions as predictions_lib
from ps_tf.evaluation import protocol as protocol_lib
from ps_tf.evaluation import prw
from ps_tf.evaluation import search

METRIC_KEYS = ('mAP', 'top1', 'top5', 'top10', 'det_ap', 'det_recall')
# The search protocols' score threshold: gallery detections scoring at least this are ranked
# (CUHK-SYSU and PRW as SeqNet evaluates them). evaluate.py and search.py default to it.
SEARCH_SCORE_THRESHOLD = 0.5


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """How to evaluate.

    Attributes:
        gallery_sizes: CUHK-SYSU-style gallery sizes (`cuhk_sysu.FULL_SET` = -1 for the full set);
            None = every size the protocol defines, then the full set. Ignored by PRW.
        det_thresh: search score threshold (protocol default 0.5; AlignPS/PSTR tuned it).
        detection_metric_thresh: score threshold of the detection metrics (0.01 as SeqNet reports).
        dedupe_gallery: rank a duplicated gallery image once (SeqNet) or per entry (OIM).
        multi_view: PRW multi-view (cross-camera) gallery instead of the standard one.
        protocol_style: `cuhk_sysu` or `prw`; None = the dataset's (lists present -> cuhk_sysu).
    """
    gallery_sizes: Sequence[int] | None = None
    det_thresh: float = SEARCH_SCORE_THRESHOLD
    detection_metric_thresh: float = 0.01
    dedupe_gallery: bool = True
    multi_view: bool = False
    protocol_style: str | None = None


def evaluate_predictions(protocol: protocol_lib.Protocol,
                         predictions: predictions_lib.Predictions,
                         settings: EvalSettings = EvalSettings()) -> list[dict]:
    """Detection and search metrics of one predictions file.

    Args:
        protocol: the dataset's protocol data.
        predictions: the predictions (any gallery order; queries in protocol order); validated
            here too.
        settings: see `EvalSettings`.

    Returns:
        One dict per gallery: the metrics of `METRIC_KEYS` (fractions in [0, 1]) plus the settings
        (`dataset`, `protocol`, `gallery_size` or `gallery`, `det_thresh`, ...) and counts.

    Raises:
        ValueError: the predictions do not match the dataset, or the settings do not apply to it.
    """
    predictions.validate()
    det_image = predictions.aligned_to(protocol.gallery.names, len(protocol.queries))
    num_images = len(protocol.gallery.names)
    gt_boxes = protocol.gallery_gt_boxes()
    det_metrics = detection.evaluate_detection(
        protocol.gallery, gt_boxes, det_image, predictions.det_boxes, predictions.det_scores,
        det_thresh=settings.detection_metric_thresh)
    labelled = detection.evaluate_detection(
        protocol.gallery, gt_boxes, det_image, predictions.det_boxes, predictions.det_scores,
        det_thresh=settings.detection_metric_thresh, labeled_only=True)
    kept = search.GalleryDetections.keep(det_image, predictions.det_boxes, predictions.det_scores,
                                         predictions.det_embeddings, num_images,
                                         settings.det_thresh)
    style = settings.protocol_style or protocol.style
    common = {
        'dataset': protocol.dataset,
        'protocol': style,
        'det_thresh': settings.det_thresh,
        'detection_metric_thresh': settings.detection_metric_thresh,
        'num_queries': len(protocol.queries),
        'num_gallery_images': num_images,
        'det_ap': det_metrics.average_precision,
        'det_recall': det_metrics.recall,
        'det_recall_labeled': labelled.recall,
    }
    problems = []
    if style == protocol_lib.CUHK_SYSU_STYLE:
        sizes = settings.gallery_sizes
        if sizes is None:
            sizes = list(protocol.gallery_sizes) + [cuhk_sysu.FULL_SET]
        for size in sizes:
            problems.append(({'gallery_size': int(size),
                              'dedupe_gallery': settings.dedupe_gallery},
                             lambda size=size: cuhk_sysu.search_problem(
                                 protocol, size, settings.dedupe_gallery)))
    elif style == protocol_lib.PRW_STYLE:
        gallery = 'multi_view' if settings.multi_view else 'standard'
        problems.append(({'gallery': gallery},
                         lambda: prw.search_problem(protocol, settings.multi_view)))
    else:
        raise ValueError(f'unknown protocol style {style!r}; expected '
                         f'{protocol_lib.CUHK_SYSU_STYLE!r} or {protocol_lib.PRW_STYLE!r}')

    rows = []
    for setting, make_problem in problems:
        started = time.perf_counter()
        result = search.evaluate_search(make_problem(), kept, predictions.query_embeddings)
        row = dict(common, **setting, **result.summary())
        row['mean_recall'] = float((result.count_tp / result.count_gt.clip(1)).mean()) \
            if len(result.count_gt) else 0.0
        row['seconds'] = round(time.perf_counter() - started, 3)
        logging.info('%s %s: %s', protocol.dataset, setting,
                     {k: round(row[k], 4) for k in METRIC_KEYS})
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """A plain-text table of `evaluate_predictions` rows, metrics as fractions in 0-1 (4
    decimals), as in the rows themselves, the JSON evaluate.py writes and train.py's last line."""
    header = ['gallery', 'mAP', 'top-1', 'top-5', 'top-10', 'det AP', 'det recall']
    lines = []
    for row in rows:
        gallery = row.get('gallery')
        if gallery is None:
            size = row['gallery_size']
            gallery = 'full set' if size == cuhk_sysu.FULL_SET else str(size)
        lines.append([gallery] + [f'{row[k]:.4f}' for k in METRIC_KEYS])
    widths = [max(len(header[i]), *(len(line[i]) for line in lines)) if lines else len(header[i])
              for i in range(len(header))]
    first = rows[0] if rows else {}
    title = (f"{first.get('dataset', '')} ({first.get('protocol', '')} protocol, search "
             f"det_thresh {first.get('det_thresh', '')}, detection metrics at score >= "
             f"{first.get('detection_metric_thresh', '')}; fractions in 0-1)")
    rule = '  '.join('-' * w for w in widths)
    table = [title, '  '.join(h.rjust(w) for h, w in zip(header, widths)), rule]
    table += ['  '.join(v.rjust(w) for v, w in zip(line, widths)) for line in lines]
    return '\n'.join(table)
