"""One search, end to end: index the gallery (only new or changed files), embed the query, rank,
and write `hits.json` and `contact_sheet.png`. `search.py` is its command line."""

from __future__ import annotations

import os
import sys

from ps_tf import atomic
from ps_tf.evaluation.evaluator import SEARCH_SCORE_THRESHOLD
from ps_tf.search.contact_sheet import contact_sheet
from ps_tf.search.index import shard_path
from ps_tf.search.media import list_gallery
from ps_tf.search.ranking import no_hits_warning, rank
from ps_tf.search.searcher import Searcher, query_embedding, update_index


def run(model: str, gallery: str, output_dir: str, query_image: str | None = None,
        query_box: str | None = None, query_crop: str | None = None, index: str | None = None,
        top_k: int = 10, fps: float = 1.0, score_threshold: float | None = None,
        max_detections: int | None = None, progress: bool = True,
        searcher: Searcher | None = None, min_score: float = SEARCH_SCORE_THRESHOLD,
        ann_ef_search: int = 0) -> dict:
    """The whole command; returns {'hits', 'warning', 'indexed_files', 'model_calls', paths
    written}.

    Only detections scoring at least `min_score` are ranked (0.5, as the evaluation protocols'
    search threshold: below it are mostly partial or background boxes); the index keeps every
    detection of the detector's own threshold, so another `min_score` needs no re-indexing.
    When nothing is ranked, `warning` (also in hits.json, and on stderr) says why and which flag
    to change (`no_hits_warning`); otherwise it is None.
    """
    if top_k < 1:
        raise ValueError(f'top_k must be >= 1, got {top_k}')
    searcher = searcher or Searcher.load(model, score_threshold, max_detections)
    calls_before = searcher.model_calls
    paths = list_gallery(gallery)
    os.makedirs(output_dir, exist_ok=True)
    index_path = index or os.path.join(output_dir, 'index.npz')
    gallery_index, indexed = update_index(searcher, paths, index_path, fps, progress)
    embedding, image, box = query_embedding(searcher, query_image, query_box, query_crop)
    threshold, flag = ((score_threshold, '--score_threshold')
                       if (score_threshold or 0.0) > min_score else (min_score, '--min_score'))
    hits = rank(gallery_index, paths, embedding, top_k, threshold, ann_ef_search,
                ann_cache=index_path)
    warning = None if hits else no_hits_warning(gallery_index, paths, threshold, flag)
    if warning:
        print(f'warning: {warning}', file=sys.stderr, flush=True)
    hits_path = os.path.join(output_dir, 'hits.json')
    atomic.write_json(hits_path, {'query': os.path.abspath(query_crop or query_image),
                                  'query_box': box.tolist(), 'hits': hits, 'warning': warning},
                      sort_keys=False)
    sheet_path = os.path.join(output_dir, 'contact_sheet.png')
    contact_sheet(image, box, hits, fps).save(sheet_path)
    return {'hits': hits, 'warning': warning, 'indexed_files': indexed, 'index': index_path,
            'hits_json': hits_path, 'contact_sheet': sheet_path,
            'model_calls': searcher.model_calls - calls_before}


def index_shard(model: str, gallery: str, index: str, shard_index: int, num_shards: int,
                fps: float = 1.0, score_threshold: float | None = None,
                max_detections: int | None = None, progress: bool = True,
                searcher: Searcher | None = None) -> dict:
    """One of `num_shards` parallel indexing jobs over `gallery` (no query): indexes every
    `num_shards`-th file into `<index>.shard-I-of-N.npz`; the next `run` with the same `index`
    merges the complete set. Returns {'indexed_files', 'detections', 'shard'}."""
    searcher = searcher or Searcher.load(model, score_threshold, max_detections)
    shard, indexed = update_index(searcher, list_gallery(gallery), index, fps, progress,
                                  shard=(shard_index, num_shards))
    return {'indexed_files': indexed, 'detections': len(shard),
            'shard': shard_path(index, shard_index, num_shards)}
