"""Scores a predictions file against a dataset's protocol: detection metrics plus search metrics
for every requested gallery, as the rows `evaluate.py` prints and writes to JSON (`sweep.py`
repeats the search part over several `max_detections_per_image` values)."""

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
from ps_tf.evaluation import prw_official
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
            Neither `det_thresh` nor the cap changes the detection metrics.
        dedupe_gallery: rank a duplicated gallery image once (SeqNet) or per entry (OIM).
        multi_view: PRW multi-view (cross-camera) gallery instead of the standard one.
        protocol_style: `cuhk_sysu`, `prw` or `prw_official` (Zheng et al.'s MATLAB protocol,
            `prw_official.py`); None = the dataset's (lists present -> cuhk_sysu, else prw).
        max_detections_per_image: search: keep at most this many detections of each gallery
            image, its highest-scoring ones, *after* `det_thresh` (both filters apply; set
            `det_thresh=0` for the cap alone, the paper's PRW setting); None = no cap.
    """
    gallery_sizes: Sequence[int] | None = None
    det_thresh: float = SEARCH_SCORE_THRESHOLD
    detection_metric_thresh: float = 0.01
    dedupe_gallery: bool = True
    multi_view: bool = False
    protocol_style: str | None = None
    max_detections_per_image: int | None = None   # last: positional construction keeps working

    def __post_init__(self):
        search.check_cap(self.max_detections_per_image)


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
        (`dataset`, `protocol`, `gallery_size` or `gallery`, `det_thresh`,
        `max_detections_per_image`, ...) and counts.

    Raises:
        ValueError: the predictions do not match the dataset, or the settings do not apply to it.
    """
    det_image = aligned_detections(protocol, predictions)
    common = detection_metrics(protocol, predictions, det_image, settings)
    return search_rows(protocol, predictions, det_image, settings, common)


def aligned_detections(protocol: protocol_lib.Protocol,
                       predictions: predictions_lib.Predictions):
    """Validates the predictions; returns (M,) the gallery protocol index of each detection."""
    predictions.validate()
    return predictions.aligned_to(protocol.gallery.names, len(protocol.queries))


def detection_metrics(protocol: protocol_lib.Protocol, predictions: predictions_lib.Predictions,
                      det_image, settings: EvalSettings) -> dict:
    """The row fields every gallery shares: dataset, counts and the detection metrics (which do
    not depend on the search settings, so a sweep computes them once)."""
    gt_boxes = protocol.gallery_gt_boxes()
    det_metrics = detection.evaluate_detection(
        protocol.gallery, gt_boxes, det_image, predictions.det_boxes, predictions.det_scores,
        det_thresh=settings.detection_metric_thresh)
    labelled = detection.evaluate_detection(
        protocol.gallery, gt_boxes, det_image, predictions.det_boxes, predictions.det_scores,
        det_thresh=settings.detection_metric_thresh, labeled_only=True)
    return {
        'dataset': protocol.dataset,
        'detection_metric_thresh': settings.detection_metric_thresh,
        'num_queries': len(protocol.queries),
        'num_gallery_images': len(protocol.gallery.names),
        'det_ap': det_metrics.average_precision,
        'det_recall': det_metrics.recall,
        'det_recall_labeled': labelled.recall,
    }


def search_rows(protocol: protocol_lib.Protocol, predictions: predictions_lib.Predictions,
                det_image, settings: EvalSettings, common: dict) -> list[dict]:
    """The search metrics of every gallery the settings ask for, one row each (`common` and the
    search settings included)."""
    num_images = len(protocol.gallery.names)
    kept = search.GalleryDetections.keep(det_image, predictions.det_boxes, predictions.det_scores,
                                         predictions.det_embeddings, num_images,
                                         settings.det_thresh, settings.max_detections_per_image)
    style = settings.protocol_style or protocol.style
    common = {'dataset': protocol.dataset, 'protocol': style, 'det_thresh': settings.det_thresh,
              'max_detections_per_image': settings.max_detections_per_image, **common}
    queries = predictions.query_embeddings
    galleries = []
    if style == protocol_lib.CUHK_SYSU_STYLE:
        sizes = settings.gallery_sizes
        if sizes is None:
            sizes = list(protocol.gallery_sizes) + [cuhk_sysu.FULL_SET]
        for size in sizes:
            galleries.append(({'gallery_size': int(size),
                               'dedupe_gallery': settings.dedupe_gallery},
                              lambda size=size: search.evaluate_search(
                                  cuhk_sysu.search_problem(protocol, size,
                                                           settings.dedupe_gallery),
                                  kept, queries)))
    elif style == protocol_lib.PRW_STYLE:
        gallery = 'multi_view' if settings.multi_view else 'standard'
        galleries.append(({'gallery': gallery},
                          lambda: search.evaluate_search(
                              prw.search_problem(protocol, settings.multi_view), kept, queries)))
    elif style == prw_official.STYLE:
        if settings.multi_view:
            raise ValueError(f'multi_view does not apply to the {prw_official.STYLE} protocol, '
                             f'which is cross-camera by definition')
        galleries.append(({'gallery': 'official'},
                          lambda: prw_official.evaluate(protocol, kept, queries)))
    else:
        raise ValueError(f'unknown protocol style {style!r}; expected one of '
                         f'{protocol_lib.CUHK_SYSU_STYLE!r}, {protocol_lib.PRW_STYLE!r} or '
                         f'{prw_official.STYLE!r}')

    rows = []
    for setting, score in galleries:
        started = time.perf_counter()
        result = score()
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
    decimals), as in the rows themselves, the JSON evaluate.py writes and train.py's last line.

    Rows with a `max_detections_per_image` cap get a column for it; rows of a sweep
    (`sweep.py`, with a `best_of_sweep` flag) a `best` column marking each gallery's best row.
    """
    capped = any(row.get('max_detections_per_image') is not None for row in rows)
    swept = any('best_of_sweep' in row for row in rows)
    header = (['gallery'] + (['max dets/image'] if capped else []) +
              ['mAP', 'top-1', 'top-5', 'top-10', 'det AP', 'det recall'] +
              (['best'] if swept else []))
    lines = []
    for row in rows:
        gallery = row.get('gallery')
        if gallery is None:
            size = row['gallery_size']
            gallery = 'full set' if size == cuhk_sysu.FULL_SET else str(size)
        cap = row.get('max_detections_per_image')
        lines.append([gallery] + ([str(cap) if cap is not None else 'all'] if capped else []) +
                     [f'{row[k]:.4f}' for k in METRIC_KEYS] +
                     (['*' if row.get('best_of_sweep') else ''] if swept else []))
    widths = [max(len(header[i]), *(len(line[i]) for line in lines)) if lines else len(header[i])
              for i in range(len(header))]
    first = rows[0] if rows else {}
    title = (f"{first.get('dataset', '')} ({first.get('protocol', '')} protocol, search "
             f"det_thresh {first.get('det_thresh', '')}"
             f"{', then at most N detections per image' if capped else ''}, detection metrics at "
             f"score >= {first.get('detection_metric_thresh', '')}; fractions in 0-1)")
    rule = '  '.join('-' * w for w in widths)
    table = [title, '  '.join(h.rjust(w) for h, w in zip(header, widths)), rule]
    table += ['  '.join(v.rjust(w) for v, w in zip(line, widths)).rstrip() for line in lines]
    if swept:
        table.append('* best max_detections_per_image of the gallery, by mAP (the first listed '
                     'value on equal mAP)')
    return '\n'.join(table)
