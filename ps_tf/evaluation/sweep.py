"""The paper's PRW setting: search metrics for several caps on the detections per gallery image,
and the best of them (docs/evaluation.md#prw-three-readings).

The paper "computes mAP and Rank-1 w.r.t. the number of detected boxes per image" and reports the
best; `evaluate_sweep` scores every value of `max_detections_per_image` with otherwise equal
settings (the detection metrics, which no cap changes, once) and picks, per gallery, the row with
the highest mAP, the first value in the given order on equal mAP.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Sequence

from ps_tf.evaluation import evaluator
from ps_tf.evaluation import predictions as predictions_lib
from ps_tf.evaluation import protocol as protocol_lib

SETTING = 'max_detections_per_image'
SELECTED_BY = 'mAP'
BEST_FLAG = 'best_of_sweep'


def check_values(values: Sequence[int]) -> list[int]:
    """The sweep values as ints, checked.

    Raises:
        ValueError: no value, a value that is not an integer >= 1, or a value listed twice.
    """
    values = list(values)
    if not values:
        raise ValueError(f'{SETTING}: the sweep needs at least one value')
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f'{SETTING}: {value!r} is not an integer >= 1')
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f'{SETTING}: {repeated} listed more than once')
    return [int(v) for v in values]


def gallery_key(row: dict) -> tuple:
    """What identifies a gallery across the rows of a sweep."""
    return (row.get('protocol'), row.get('gallery_size'), row.get('gallery'))


def best_rows(rows: list[dict]) -> list[dict]:
    """Per gallery (in first-appearance order), the row of highest mAP; the first on equal mAP."""
    best: dict[tuple, dict] = {}
    for row in rows:
        key = gallery_key(row)
        if key not in best or row[SELECTED_BY] > best[key][SELECTED_BY]:
            best[key] = row
    return list(best.values())


def evaluate_sweep(protocol: protocol_lib.Protocol, predictions: predictions_lib.Predictions,
                   settings: evaluator.EvalSettings, values: Sequence[int]
                   ) -> tuple[list[dict], list[dict]]:
    """Scores every cap in `values` (the settings' own cap is replaced).

    Args:
        protocol: the dataset's protocol data.
        predictions: the predictions.
        settings: everything but the cap.
        values: the caps, each >= 1, in the order to report them.

    Returns:
        (rows, best): every row in value order, galleries inside (each with
        `max_detections_per_image` and `best_of_sweep`), and the best row of each gallery.

    Raises:
        ValueError: bad values (`check_values`), or predictions/settings that do not fit.
    """
    values = check_values(values)
    det_image = evaluator.aligned_detections(protocol, predictions)
    common = evaluator.detection_metrics(protocol, predictions, det_image, settings)
    rows = []
    for value in values:
        capped = dataclasses.replace(settings, max_detections_per_image=value)
        rows += evaluator.search_rows(protocol, predictions, det_image, capped, common)
    best = best_rows(rows)
    chosen = {id(row) for row in best}
    for row in rows:
        row[BEST_FLAG] = id(row) in chosen
    return rows, best
