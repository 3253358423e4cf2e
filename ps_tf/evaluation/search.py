"""The ranking engine shared by the CUHK-SYSU and PRW search protocols
(docs/evaluation.md#search-protocols).

A protocol (`cuhk_sysu.py`, `prw.py`) turns its rules into a `SearchProblem`: for every query, how
many times each gallery image's detections are ranked (0, 1, or 2+ for duplicate entries processed
twice), which entries hold the query person (with their ground-truth box) and the recall
denominator `count_gt`. This module scores detections against it, without sorting each ranking:

- the true positive of a positive entry is its image's highest-similarity detection with
  IoU >= min(0.5, wh / ((w+10)(h+10))) (the reference's "first match in similarity order");
- AP = (1 / count_gt) * sum over true positives of TP(>= s) / N(>= s) (`average_precision.py`),
  where N(>= s) is counted over the query's ranked items with their multiplicities;
- top-k follows from how many items score above / equal to the best true positive. Only when
  exact score ties between a true and a false positive straddle rank k does the reference's answer
  depend on `np.argsort`'s order of tied items; those rare queries are re-ranked exactly as the
  reference does (`SearchProblem.reference_order`).

Similarities are dot products computed in float64 and rounded to float32, the reference's score
dtype: the correctly rounded float32 dot product, so equal embeddings get equal scores wherever
they sit. (The reference's float32 BLAS calls can differ from it in the last bits, which changes
rankings only between near-exact ties.) Small galleries (CUHK-SYSU 50-500) rank each query's own
detections; large ones rank all detections with weights, in chunks of queries.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
from absl import logging

from ps_tf.evaluation import average_precision as ap_lib
from ps_tf.evaluation import boxes as boxes_lib
from ps_tf.evaluation import segments

TOP_K = (1, 5, 10)
SPARSE_MAX_FRACTION = 0.1      # rank per-query detection lists below this gallery fraction
CHUNK_ELEMENTS = 1 << 23       # similarities per chunk of queries (32 MB of float32)


@dataclasses.dataclass(frozen=True)
class SearchProblem:
    """What a search protocol asks of each query, independent of any model output.

    Attributes:
        gallery_weight: (Q, N) uint8 times query q ranks the detections of gallery image n.
        positive_query: (P,) int64 query of each processed positive entry.
        positive_image: (P,) int64 its gallery image (ranked by that query, weight >= 1).
        positive_box: (P, 4) int32 pixel x1, y1, x2, y2 ground truth of the query person there.
        count_gt: (Q,) int64 recall denominator of each query.
        reference_order: q -> (images, positive): the query's ranked entries in the order the
            reference concatenates them, `positive` being the index into the positive arrays or -1.
            Used only to break exact ties at the top-k boundary as the reference does.
    """
    gallery_weight: np.ndarray
    positive_query: np.ndarray
    positive_image: np.ndarray
    positive_box: np.ndarray
    count_gt: np.ndarray
    reference_order: Callable[[int], tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class GalleryDetections:
    """Detections kept by the search threshold, grouped by gallery image (file order inside).

    Attributes:
        offsets: (N + 1,) int64; image n's detections are rows offsets[n]:offsets[n+1].
        boxes: (M, 4) float32 pixel x1, y1, x2, y2.
        embeddings: (M, D) float32 L2-normalised.
    """
    offsets: np.ndarray
    boxes: np.ndarray
    embeddings: np.ndarray

    @classmethod
    def keep(cls, det_image: np.ndarray, det_boxes: np.ndarray, det_scores: np.ndarray,
             det_embeddings: np.ndarray, num_images: int, det_thresh: float,
             max_per_image: int | None = None) -> 'GalleryDetections':
        """Keeps detections with `score >= det_thresh` (compared in the scores' dtype, float32),
        then at most `max_per_image` of each image: its highest-scoring ones (equal scores: the
        earlier in the file first). Both filters apply; `det_thresh=0` leaves the cap alone.

        Args:
            det_image: (M,) int gallery protocol index of each detection.
            det_boxes: (M, 4) float32 pixel x1, y1, x2, y2.
            det_scores: (M,) float32.
            det_embeddings: (M, D) float32.
            num_images: N, the gallery size.
            det_thresh: the search score threshold.
            max_per_image: cap on the detections kept per image; None = no cap.

        Raises:
            ValueError: `max_per_image` < 1.
        """
        det_scores = np.asarray(det_scores)
        det_image = np.asarray(det_image)
        kept = np.flatnonzero(det_scores >= np.asarray(det_thresh, det_scores.dtype))
        if max_per_image is not None:
            kept = kept[_top_per_image(det_image[kept], det_scores[kept], max_per_image)]
        kept = kept[np.argsort(det_image[kept], kind='stable')]
        counts = np.bincount(det_image[kept], minlength=num_images)
        return cls(offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                   boxes=np.asarray(det_boxes)[kept], embeddings=np.asarray(det_embeddings)[kept])

    @property
    def counts(self) -> np.ndarray:
        """(N,) int64 kept detections per image."""
        return np.diff(self.offsets)


def check_cap(cap) -> None:
    """Refuses a detections-per-image cap that is not an integer >= 1 (None, no cap, is fine).

    Raises:
        ValueError: naming the setting and the value.
    """
    if cap is not None and (isinstance(cap, bool) or int(cap) != cap or cap < 1):
        raise ValueError(f'max_detections_per_image must be an integer >= 1 (or None for no '
                         f'cap), got {cap!r}')


def _top_per_image(image: np.ndarray, scores: np.ndarray, limit: int) -> np.ndarray:
    """Indices (ascending) of the `limit` highest-scoring items of each image; on equal scores
    the lower index wins."""
    check_cap(limit)
    index = np.arange(len(image))
    order = np.lexsort((index, -np.asarray(scores, np.float64), image))
    sorted_image = image[order]
    rank = index - np.searchsorted(sorted_image, sorted_image, side='left')
    return np.sort(order[rank < limit])


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """Per-query search metrics.

    Attributes:
        average_precision: (Q,) recall-scaled AP.
        top_k: (Q, len(TOP_K)) float64 0/1 top-1/5/10 hits.
        count_tp: (Q,) int64 true positives.
        count_gt: (Q,) int64 recall denominators.
    """
    average_precision: np.ndarray
    top_k: np.ndarray
    count_tp: np.ndarray
    count_gt: np.ndarray

    def summary(self) -> dict[str, float]:
        """mAP and top-k accuracies averaged over queries (fractions in [0, 1])."""
        top_k = self.top_k.mean(axis=0) if len(self.top_k) else np.zeros(len(TOP_K))
        result = {'mAP': float(np.mean(self.average_precision)) if len(self.top_k) else 0.0}
        result.update({f'top{k}': float(v) for k, v in zip(TOP_K, top_k)})
        return result


def evaluate_search(problem: SearchProblem, detections: GalleryDetections,
                    query_embeddings: np.ndarray) -> SearchResult:
    """Scores one search protocol.

    Args:
        problem: the protocol's `SearchProblem`.
        detections: the kept gallery detections.
        query_embeddings: (Q, D) float32 L2-normalised, in protocol query order.

    Returns:
        Per-query AP and top-k (`SearchResult`).
    """
    num_queries, num_images = problem.gallery_weight.shape
    if len(query_embeddings) != num_queries or len(detections.offsets) != num_images + 1:
        raise ValueError(f'search problem of {num_queries} queries x {num_images} images, got '
                         f'{len(query_embeddings)} query embeddings and detections for '
                         f'{len(detections.offsets) - 1} images')
    match_positive, match_det = _matching_detections(problem, detections)
    ranked = np.count_nonzero(problem.gallery_weight) / max(1, problem.gallery_weight.size)
    scorer = _SparseChunks if ranked < SPARSE_MAX_FRACTION else _DenseChunks
    chunks = scorer(problem, detections, np.asarray(query_embeddings))

    average_precision = np.zeros(num_queries)
    top_k = np.zeros((num_queries, len(TOP_K)))
    count_tp = np.zeros(num_queries, np.int64)
    tp_score = np.full(len(problem.positive_query), -np.inf, np.float32)
    for rows, scores, weights, column_of in chunks:
        in_chunk = np.isin(problem.positive_query[match_positive], rows)
        positive, det = match_positive[in_chunk], match_det[in_chunk]
        local_row = np.searchsorted(rows, problem.positive_query[positive])
        columns = column_of(local_row, det)
        if np.any(columns < 0):
            raise ValueError('a positive entry lies in an image its query does not rank')
        np.maximum.at(tp_score, positive, scores[local_row, columns])
        chunk_positives = np.flatnonzero(np.isin(problem.positive_query, rows))
        chunk_positives = chunk_positives[np.isfinite(tp_score[chunk_positives])]
        tp_row = np.searchsorted(rows, problem.positive_query[chunk_positives])
        ap_chunk, top_k_chunk, ambiguous = _rank_statistics(
            scores, weights, tp_row, tp_score[chunk_positives], problem.count_gt[rows])
        average_precision[rows], top_k[rows] = ap_chunk, top_k_chunk
        count_tp[rows] = np.bincount(tp_row, minlength=len(rows))
        for local in np.flatnonzero(ambiguous):
            det_scores = np.full(len(detections.boxes), np.nan, np.float32)
            columns = column_of(np.full(len(det_scores), local), np.arange(len(det_scores)))
            valid = columns >= 0
            det_scores[valid] = scores[local, columns[valid]]
            top_k[rows[local]] = _reference_top_k(problem, detections, rows[local], det_scores)
    no_gt = int(np.sum(problem.count_gt == 0))
    if no_gt:
        logging.warning('%d of %d queries have no ground truth in their gallery; their AP is 0',
                        no_gt, num_queries)
    return SearchResult(average_precision=average_precision, top_k=top_k, count_tp=count_tp,
                        count_gt=np.asarray(problem.count_gt, np.int64))


def _matching_detections(problem: SearchProblem, detections: GalleryDetections
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(positive, detection) pairs in the same image with IoU >= the small-box threshold."""
    counts = detections.counts
    positive, det = segments.expand_ranges(detections.offsets[problem.positive_image],
                                           counts[problem.positive_image])
    threshold = boxes_lib.search_iou_threshold(problem.positive_box)
    iou = boxes_lib.paired_iou(detections.boxes[det], problem.positive_box[positive])
    matched = iou >= threshold[positive]
    return positive[matched], det[matched]


def _rank_statistics(scores: np.ndarray, weights: np.ndarray, tp_row: np.ndarray,
                     tp_score: np.ndarray, count_gt: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AP and top-k of a chunk of queries from counts at their true positives' scores.

    Args:
        scores: (R, L) float32 similarity of each ranked column (padding: anything, weight 0).
        weights: (R, L) uint8 multiplicity of each column in the query's ranking.
        tp_row: (T,) row of each true positive; tp_score: (T,) its similarity.
        count_gt: (R,) recall denominators.

    Returns:
        ap (R,), top_k (R, 3) float64, ambiguous (R,) bool: top-k needs the reference order.
    """
    num_rows = len(scores)
    order = np.lexsort((-tp_score, tp_row))
    tp_row, tp_score = tp_row[order], tp_score[order]
    num_tp = np.bincount(tp_row, minlength=num_rows)
    rank_in_row = np.arange(len(tp_row)) - (np.cumsum(num_tp) - num_tp)[tp_row]
    padded = np.full((num_rows, max(1, int(num_tp.max(initial=0)))), -np.inf, np.float32)
    padded[tp_row, rank_in_row] = tp_score
    ranked_at_or_above = np.zeros(padded.shape, np.int64)
    for column in range(int(num_tp.max(initial=0))):
        rows = np.flatnonzero(num_tp > column)
        sub_scores = scores if len(rows) == num_rows else scores[rows]
        sub_weights = weights if len(rows) == num_rows else weights[rows]
        ranked_at_or_above[rows, column] = np.sum(
            sub_weights, axis=1, dtype=np.int64,
            where=sub_scores >= padded[rows, column][:, None])
    tp_at_or_above = np.sum(padded[tp_row] >= tp_score[:, None], axis=1)
    ap = ap_lib.recall_scaled_average_precision(
        tp_row, tp_at_or_above, ranked_at_or_above[tp_row, rank_in_row], count_gt)

    # Top-k: the best true positive is column 0 (scores sorted descending within a row).
    top_k = np.zeros((num_rows, len(TOP_K)))
    ambiguous = np.zeros(num_rows, bool)
    rows = np.flatnonzero(num_tp > 0)
    best = padded[rows, 0]
    at_or_above = ranked_at_or_above[rows, 0]
    equal = np.sum(weights[rows], axis=1, dtype=np.int64, where=scores[rows] == best[:, None])
    above = at_or_above - equal
    tp_equal = np.sum(padded[rows] == best[:, None], axis=1)
    for i, k in enumerate(TOP_K):
        tied_at_k = (above < k) & (at_or_above > k)
        top_k[rows, i] = (at_or_above <= k) | (tied_at_k & (tp_equal == equal))
        ambiguous[rows] |= tied_at_k & (tp_equal < equal)
    return ap, top_k, ambiguous


def _reference_top_k(problem: SearchProblem, detections: GalleryDetections, query: int,
                     det_scores: np.ndarray) -> np.ndarray:
    """Top-k of one query ranked exactly as the reference does (for exact ties only).

    Rebuilds the reference's concatenated `y_score`/`y_true` (images in protocol order; an image
    holding the person sorted by `np.argsort(sim)[::-1]`, its first match labelled) and applies
    `np.argsort(y_score)[::-1]`, whose order of tied items is the reference's.
    """
    images, positive = problem.reference_order(query)
    y_score, y_true = [], []
    thresholds = boxes_lib.search_iou_threshold(problem.positive_box)
    for image, p in zip(images.tolist(), positive.tolist()):   # rare path: a handful of queries
        start, end = detections.offsets[image], detections.offsets[image + 1]
        if start == end:
            continue
        sim = det_scores[start:end]
        label = np.zeros(len(sim), np.int32)
        if p >= 0:
            order = np.argsort(sim)[::-1]
            sim = sim[order]
            iou = boxes_lib.paired_iou(detections.boxes[start:end][order],
                                       np.repeat(problem.positive_box[p:p + 1], len(sim), 0))
            hits = np.flatnonzero(iou >= thresholds[p])
            if len(hits):
                label[hits[0]] = 1
        y_score.append(sim)
        y_true.append(label)
    y_score, y_true = np.concatenate(y_score), np.concatenate(y_true)
    ranked = y_true[np.argsort(y_score)[::-1]]
    return np.asarray([min(1, ranked[:k].sum()) for k in TOP_K], np.float64)


class _DenseChunks:
    """Chunks of queries x all kept detections, weighted by each query's image multiplicity."""

    def __init__(self, problem: SearchProblem, detections: GalleryDetections,
                 query_embeddings: np.ndarray):
        self._problem = problem
        self._det_image = np.repeat(np.arange(len(detections.counts)), detections.counts)
        self._embeddings = np.asarray(detections.embeddings, np.float64)
        self._queries = np.asarray(query_embeddings, np.float64)
        self._rows = max(1, CHUNK_ELEMENTS // max(1, len(self._det_image)))

    def __iter__(self):
        num_queries = len(self._queries)
        for start in range(0, num_queries, self._rows):
            rows = np.arange(start, min(num_queries, start + self._rows))
            scores = (self._queries[rows] @ self._embeddings.T).astype(np.float32)
            weights = self._problem.gallery_weight[rows][:, self._det_image]
            yield rows, scores, weights, lambda local_row, det: det


class _SparseChunks:
    """Chunks of queries x their own ranked detections (padded rows), for small galleries."""

    def __init__(self, problem: SearchProblem, detections: GalleryDetections,
                 query_embeddings: np.ndarray):
        self._problem = problem
        self._detections = detections
        self._queries = np.asarray(query_embeddings, np.float64)

    def __iter__(self):
        problem, detections = self._problem, self._detections
        counts = detections.counts
        pair_row, pair_image = np.nonzero(problem.gallery_weight)   # sorted by query
        items_per_query = np.bincount(pair_row, weights=counts[pair_image],
                                      minlength=len(self._queries))
        rows_per_chunk = max(1, CHUNK_ELEMENTS // max(1, int(items_per_query.max(initial=1))))
        num_queries = len(self._queries)
        for start in range(0, num_queries, rows_per_chunk):
            rows = np.arange(start, min(num_queries, start + rows_per_chunk))
            first, last = np.searchsorted(pair_row, [rows[0], rows[-1] + 1])
            yield self._chunk(rows, pair_row[first:last] - start, pair_image[first:last], counts)

    def _chunk(self, rows: np.ndarray, pair_row: np.ndarray, pair_image: np.ndarray,
               counts: np.ndarray):
        """Rows `rows` (contiguous queries); pairs (local row, image) they rank, sorted by row."""
        detections = self._detections
        pair_weight = self._problem.gallery_weight[rows[pair_row], pair_image]
        pair_count = counts[pair_image]
        row_items = np.bincount(pair_row, weights=pair_count, minlength=len(rows)).astype(np.int64)
        pair_column = np.cumsum(pair_count) - pair_count
        pair_column -= (np.cumsum(row_items) - row_items)[pair_row]
        width = max(1, int(row_items.max(initial=0)))
        # Similarities image by image (one small product per image) into a buffer ordered by
        # image, then scattered to the per-query rows in one go.
        by_image = np.argsort(pair_image, kind='stable')
        sorted_image = pair_image[by_image]
        sorted_count = counts[sorted_image]
        _, destination = segments.expand_ranges((pair_row * width + pair_column)[by_image],
                                                sorted_count)
        buffer = np.empty(len(destination), np.float32)
        group_starts = np.flatnonzero(np.r_[True, sorted_image[1:] != sorted_image[:-1]])
        group_ends = np.r_[group_starts[1:], len(sorted_image)]
        item_starts = np.cumsum(sorted_count) - sorted_count
        query_rows = rows[pair_row[by_image]]
        groups = zip(group_starts.tolist(), group_ends.tolist(), item_starts[group_starts].tolist(),
                     detections.offsets[sorted_image[group_starts]].tolist(),
                     detections.offsets[sorted_image[group_starts] + 1].tolist())
        for first, last, item_start, start, end in groups:
            if start == end:
                continue
            block = (self._queries[query_rows[first:last]] @
                     detections.embeddings[start:end].astype(np.float64).T)
            buffer[item_start:item_start + block.size] = block.ravel()
        scores = np.full(len(rows) * width, -np.inf, np.float32)
        scores[destination] = buffer
        weights = np.zeros(len(rows) * width, np.uint8)
        weights[destination] = np.repeat(pair_weight[by_image], sorted_count)
        scores, weights = scores.reshape(len(rows), width), weights.reshape(len(rows), width)
        keys = pair_row * len(counts) + pair_image
        det_image = np.repeat(np.arange(len(counts)), counts)

        def column_of(local_row: np.ndarray, det: np.ndarray) -> np.ndarray:
            image = det_image[det]
            key = local_row * len(counts) + image
            pair = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
            found = keys[pair] == key if len(keys) else np.zeros(len(key), bool)
            return np.where(found, pair_column[pair] + det - detections.offsets[image], -1)

        return rows, scores, weights, column_of
