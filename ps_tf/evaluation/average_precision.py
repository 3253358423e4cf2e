"""Average precision as every person-search table computes it
(docs/evaluation.md#average-precision).

`average_precision` is scikit-learn's `average_precision_score` (>= 0.19): the step-wise,
non-interpolated area under the precision-recall curve, with tied scores grouped into one
threshold. The protocols then scale it by the recall of the detector ("recall-scaled AP"):

    AP_final = AP_sklearn * count_tp / count_gt
             = (1 / count_gt) * sum over true positives t of  TP(>= s_t) / N(>= s_t),

where s_t is the score of t, TP(>= s) the number of true positives scoring at least s and N(>= s)
the number of ranked items scoring at least s (ties included). `recall_scaled_average_precision`
evaluates the second form from those counts, which is what lets the search protocols skip sorting
each query's whole ranking.

`trapezoid_average_precision` is the other definition, that of `compute_AP.m` in Zheng et al.'s
PRW (and Market-1501) MATLAB code, used only by `prw_official.py`.
"""

from __future__ import annotations

import numpy as np


def average_precision(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """scikit-learn's `average_precision_score(y_true, y_score)` (>= 0.19), vectorised.

    Args:
        y_true: (L,) bool or 0/1 labels.
        y_score: (L,) scores; equal values form one threshold (a tie), so their order is irrelevant.

    Returns:
        Step-wise AP = sum_k (R_k - R_{k-1}) P_k over the distinct scores, highest first; 0.0 when
        there is no positive label (scikit-learn warns and returns 0 there too).

    Raises:
        ValueError: empty or mismatched inputs.
    """
    y_true = np.asarray(y_true).reshape(-1).astype(bool)
    y_score = np.asarray(y_score).reshape(-1)
    if y_true.size != y_score.size:
        raise ValueError(f'average_precision: {y_true.size} labels but {y_score.size} scores')
    if y_true.size == 0:
        raise ValueError('average_precision: no items to rank')
    order = np.argsort(y_score, kind='mergesort')[::-1]
    score, true = y_score[order], y_true[order]
    last_of_each_threshold = np.r_[np.flatnonzero(np.diff(score)), score.size - 1]
    true_positives = np.cumsum(true)[last_of_each_threshold]
    if true_positives[-1] == 0:
        return 0.0
    precision = true_positives / (last_of_each_threshold + 1.0)
    recall = true_positives / true_positives[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def recall_scaled_average_precision(query_of_tp: np.ndarray, tp_at_or_above: np.ndarray,
                                    ranked_at_or_above: np.ndarray, count_gt: np.ndarray
                                    ) -> np.ndarray:
    """Recall-scaled AP of many queries from rank counts at their true positives.

    Args:
        query_of_tp: (T,) int, the query of each true positive.
        tp_at_or_above: (T,) number of true positives of that query scoring >= this one's score
            (itself included).
        ranked_at_or_above: (T,) number of ranked items of that query scoring >= this one's score
            (ties and itself included).
        count_gt: (Q,) ground-truth count of each query (the recall denominator).

    Returns:
        (Q,) float64 AP_sklearn * count_tp / count_gt; 0 for queries without true positives or
        without ground truth.
    """
    count_gt = np.asarray(count_gt, np.float64)
    terms = np.asarray(tp_at_or_above, np.float64) / np.asarray(ranked_at_or_above, np.float64)
    sums = np.bincount(np.asarray(query_of_tp, np.int64), weights=terms, minlength=count_gt.size)
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(count_gt > 0, sums / np.where(count_gt > 0, count_gt, 1.0), 0.0)


def trapezoid_average_precision(good_position: np.ndarray, num_good: int) -> float:
    """`compute_AP.m`'s AP: the trapezoid rule over the ranking, junk already removed.

    Walking down the ranking, every item updates recall R and precision P, and the AP adds
    (R - R_prev) (P_prev + P) / 2, starting from R = 0, P = 1. Only good items change R, so

        AP = (1 / num_good) * sum over the i-th good item, at position r_i, of
             ((i - 1) / (r_i - 1) + i / r_i) / 2,      with (i - 1) / (r_i - 1) = 1 when r_i = 1.

    Args:
        good_position: (G,) 1-based positions of the good items in the ranking without junk.
        num_good: the recall denominator (good items ranked plus good items never ranked, such
            as missed detections); >= G.

    Returns:
        The AP; 0.0 when `num_good` is 0.
    """
    position = np.sort(np.asarray(good_position, np.float64).reshape(-1))
    if num_good < len(position):
        raise ValueError(f'trapezoid AP: {len(position)} good items but num_good {num_good}')
    if num_good == 0:
        return 0.0
    i = np.arange(1, len(position) + 1, dtype=np.float64)
    previous = np.where(position > 1, (i - 1) / np.maximum(position - 1, 1), 1.0)
    return float(np.sum((previous + i / position) / 2) / num_good)
