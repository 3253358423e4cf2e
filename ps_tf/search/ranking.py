"""Ranking: the gallery detections most similar to a query, and why there are none when there are
none."""

from __future__ import annotations

import math

import numpy as np

from ps_tf.search.media import IMAGE_TIME


def rank(index, paths: list[str], query: np.ndarray, top_k: int,
         min_score: float = 0.0, ann_ef_search: int = 0,
         ann_cache: str | None = None) -> list[dict]:
    """The top-k detections of the gallery's files by cosine similarity to the query: exact
    (`top_k_cosine`), or approximate with FAISS HNSW when `ann_ef_search` > 0 (`top_k_hnsw`,
    its graph cached next to `ann_cache`)."""
    from ps_tf.search.index import top_k_cosine, top_k_hnsw

    selected = np.flatnonzero(index.detections_of(paths)
                              & (index.detections['det_scores'] >= min_score))
    if not len(selected):
        return []
    embeddings = index.detections['det_embeddings'][selected]
    if ann_ef_search > 0:
        similarity, order = top_k_hnsw(query[None], embeddings, top_k, ann_ef_search,
                                       cache_path=ann_cache)
    else:
        similarity, order = top_k_cosine(query[None], embeddings, top_k)
    hits = []
    for position, (value, row) in enumerate(zip(similarity[0], selected[order[0]])):
        time = float(index.detections['det_time'][row])
        hits.append({'rank': position + 1, 'detection': int(row),
                     'file': index.keys[index.detections['det_file'][row]].path,
                     'frame_time': None if time == IMAGE_TIME else time,
                     'box': [round(float(v), 2) for v in index.detections['det_boxes'][row]],
                     'score': round(float(index.detections['det_scores'][row]), 4),
                     'similarity': round(float(value), 4)})
    return hits


def no_hits_warning(index, paths: list[str], min_score: float,
                    flag: str = '--min_score') -> str | None:
    """Why nothing was ranked, and what to change, when no detection of the gallery's files
    scores at least `min_score` (the threshold `flag` set); None when some detection does."""
    scores = index.detections['det_scores'][index.detections_of(paths)]
    if not len(scores):
        return (f'no hits: the detector found no one in the {len(paths)} gallery file(s) (a '
                f'checkpoint\'s detector threshold is --score_threshold)')
    best = float(scores.max())
    if best >= min_score:
        return None
    # Scores are float32: 0.9 is stored as 0.89999998, which --min_score=0.9 still ranks.
    suggested = round(best, 4)
    if np.float32(suggested) > scores.max():
        suggested = math.floor(best * 1e4) / 1e4
    reuse = ' (the index is reused: nothing is detected again)' if flag == '--min_score' else ''
    return (f'no hits: all {len(scores)} detections in the gallery score below {flag} '
            f'{min_score:g} (the best scores {best:.4f}); rerun with {flag}={suggested:g} or '
            f'lower to rank them{reuse}')
