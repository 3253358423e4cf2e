"""A gallery index for person search (`search.py`) and exact cosine search over it in chunks.

The index file (an uncompressed `.npz`, written atomically) holds, per indexed source file
(an image, or a video sampled at some frame rate), its path, modification time (ns), size
(bytes) and sampling rate (0 for images), and per detection its file, frame time (seconds, -1
for images), box (original pixel x1, y1, x2, y2), detection score and L2-normalised embedding
(float16 on disk). A file whose (mtime, size, fps) changed is indexed again; files not in the
index are added without touching the rest. `model_id` names the model that made the embeddings;
an index of another model is not reused.

Large galleries index in parallel: N jobs (`search.py --num_shards=N --shard_index=I`, on one
machine or several sharing the folder) each index every N-th file into
`<index>.shard-I-of-N.npz`; the next search merges a complete set into the index (`merge_shards`)
and deletes the shard files.

`top_k_cosine` searches any (N, E) array — in memory, float16, or a `np.memmap` — in chunks of
`chunk_size` rows, so its working memory is O(chunk_size * (E + Q)) whatever N is.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import os
import re

import numpy as np
from absl import logging

from ps_tf import atomic

INDEX_VERSION = 1


@dataclasses.dataclass(frozen=True)
class SourceKey:
    """What makes an indexed file current: its path, mtime (ns), size and sampling rate."""
    path: str
    mtime_ns: int
    size: int
    fps: float = 0.0

    @classmethod
    def of(cls, path: str, fps: float = 0.0) -> 'SourceKey':
        stat = os.stat(path)
        return cls(os.path.abspath(path), int(stat.st_mtime_ns), int(stat.st_size), float(fps))


def _empty(dim: int) -> dict[str, np.ndarray]:
    return {'det_file': np.zeros(0, np.int64), 'det_time': np.zeros(0, np.float64),
            'det_boxes': np.zeros((0, 4), np.float32), 'det_scores': np.zeros(0, np.float32),
            'det_embeddings': np.zeros((0, dim), np.float16)}


class GalleryIndex:
    """Detections and embeddings of gallery files (see the module docstring).

    Args:
        model_id: names the model whose embeddings the index holds.
        embedding_dim: E.
    """

    def __init__(self, model_id: str, embedding_dim: int):
        self.model_id = model_id
        self.embedding_dim = int(embedding_dim)
        self.keys: list[SourceKey] = []
        self.detections = _empty(self.embedding_dim)

    def __len__(self) -> int:
        return len(self.detections['det_scores'])

    @classmethod
    def load(cls, path: str) -> 'GalleryIndex':
        """Reads an index file.

        Raises:
            ValueError: not an index file of this version.
        """
        with np.load(path, allow_pickle=False) as data:
            if 'index_version' not in data or int(data['index_version']) != INDEX_VERSION:
                raise ValueError(f'{path} is not a gallery index (version {INDEX_VERSION})')
            index = cls(str(data['model_id']), int(data['embedding_dim']))
            index.keys = [SourceKey(str(p), int(m), int(s), float(f)) for p, m, s, f in zip(
                data['file_path'], data['file_mtime_ns'], data['file_size'], data['file_fps'])]
            index.detections = {k: data[k] for k in _empty(index.embedding_dim)}
        return index

    def save(self, path: str) -> None:
        """Writes the index atomically (a temporary file in the same directory, then rename)."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with atomic.replacing(path) as temporary:
            with open(temporary, 'wb') as f:
                np.savez(f, index_version=INDEX_VERSION, model_id=self.model_id,
                         embedding_dim=self.embedding_dim,
                         file_path=np.asarray([k.path for k in self.keys], dtype=str),
                         file_mtime_ns=np.asarray([k.mtime_ns for k in self.keys], np.int64),
                         file_size=np.asarray([k.size for k in self.keys], np.int64),
                         file_fps=np.asarray([k.fps for k in self.keys], np.float64),
                         **self.detections)

    def missing(self, keys: list[SourceKey]) -> list[SourceKey]:
        """The keys not indexed as they are now (new files, or changed since indexing)."""
        current = set(self.keys)
        return [key for key in keys if key not in current]

    def _remove_path(self, path: str) -> None:
        positions = [i for i, key in enumerate(self.keys) if key.path == path]
        if not positions:
            return
        keep = ~np.isin(self.detections['det_file'], positions)
        remap = np.cumsum([key.path != path for key in self.keys]) - 1
        self.detections = {k: v[keep] for k, v in self.detections.items()}
        self.detections['det_file'] = remap[self.detections['det_file']].astype(np.int64)
        self.keys = [key for key in self.keys if key.path != path]

    def add(self, key: SourceKey, times: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
            embeddings: np.ndarray) -> None:
        """Records one file's detections, replacing any earlier version of the file.

        Args:
            key: the file.
            times: (M,) frame time in seconds (-1 for an image).
            boxes: (M, 4) original pixel x1, y1, x2, y2.
            scores: (M,) detection scores.
            embeddings: (M, E) L2-normalised.
        """
        embeddings = np.asarray(embeddings).reshape(-1, self.embedding_dim)
        self._remove_path(key.path)
        self.keys.append(key)
        new = {'det_file': np.full(len(embeddings), len(self.keys) - 1, np.int64),
               'det_time': np.asarray(times, np.float64).reshape(-1),
               'det_boxes': np.asarray(boxes, np.float32).reshape(-1, 4),
               'det_scores': np.asarray(scores, np.float32).reshape(-1),
               'det_embeddings': embeddings.astype(np.float16)}
        if len({len(v) for v in new.values()}) != 1:
            raise ValueError(f'{key.path}: times, boxes, scores and embeddings differ in length')
        self.detections = {k: np.concatenate([self.detections[k], v]) for k, v in new.items()}

    def detections_of(self, paths: list[str]) -> np.ndarray:
        """(M,) bool: the detections in these files (absolute paths)."""
        wanted = np.asarray([key.path in set(paths) for key in self.keys], bool)
        return wanted[self.detections['det_file']] if len(self.keys) else np.zeros(0, bool)


def shard_path(index_path: str, shard_index: int, num_shards: int) -> str:
    """Where shard `shard_index` of `num_shards` indexing jobs writes: `<index>.shard-I-of-N.npz`
    beside the index, merged into it by `merge_shards`."""
    if not 0 <= shard_index < num_shards:
        raise ValueError(f'shard_index must be in [0, {num_shards}), got {shard_index}')
    base = index_path[:-len('.npz')] if index_path.endswith('.npz') else index_path
    return f'{base}.shard-{shard_index:03d}-of-{num_shards:03d}.npz'


def shard_of(paths: list[str], shard_index: int, num_shards: int) -> list[str]:
    """The files shard `shard_index` indexes: every `num_shards`-th of the sorted gallery."""
    shard_path('', shard_index, num_shards)   # validates
    return list(paths)[shard_index::num_shards]


def _shard_sets(index_path: str) -> dict[int, dict[int, str]]:
    """{N: {I: path}} of the shard files beside `index_path`."""
    base = index_path[:-len('.npz')] if index_path.endswith('.npz') else index_path
    found: dict[int, dict[int, str]] = {}
    for path in glob.glob(glob.escape(base) + '.shard-*-of-*.npz'):
        match = re.fullmatch(r'.*\.shard-(\d+)-of-(\d+)\.npz', path)
        if match:
            found.setdefault(int(match.group(2)), {})[int(match.group(1))] = path
    return found


def merge_shards(index: GalleryIndex, index_path: str) -> tuple[int, list[str]]:
    """Adds every complete set of shard files beside `index_path` to `index`, then deletes them.

    The files of all shards are added in path order, the order one indexing run adds a sorted
    gallery in, so that the merged index equals the index of one run over the whole gallery.
    The caller saves `index` (before this deletes anything: see `delete_shards`).

    Returns:
        (files added, the shard files merged, to delete once the index is saved).

    Raises:
        ValueError: a shard of another model or embedding size.
    """
    added, merged = 0, []
    for count, shards in sorted(_shard_sets(index_path).items()):
        missing = sorted(set(range(count)) - set(shards))
        if missing:
            logging.warning('%s: shards %s of %d not written yet; their files are not merged',
                            index_path, missing, count)
            continue
        files = []
        for path in (shards[i] for i in range(count)):
            shard = GalleryIndex.load(path)
            if (shard.model_id, shard.embedding_dim) != (index.model_id, index.embedding_dim):
                raise ValueError(f'{path} holds {shard.model_id} ({shard.embedding_dim}-d) '
                                 f'embeddings, the index {index.model_id} '
                                 f'({index.embedding_dim}-d): delete the shard or index again')
            files += [(key, {k: v[shard.detections['det_file'] == position]
                             for k, v in shard.detections.items()})
                      for position, key in enumerate(shard.keys)]
        for key, found in sorted(files, key=lambda item: item[0].path):
            index.add(key, found['det_time'], found['det_boxes'], found['det_scores'],
                      found['det_embeddings'])
        added += len(files)
        merged += [shards[i] for i in range(count)]
    return added, merged


def top_k_cosine(queries: np.ndarray, embeddings: np.ndarray, k: int,
                 chunk_size: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by cosine similarity of L2-normalised vectors, chunk by chunk.

    Args:
        queries: (Q, E) L2-normalised.
        embeddings: (N, E) L2-normalised, any float dtype; may be a `np.memmap` (rows are read
            one chunk at a time).
        k: hits per query (at most N are returned).
        chunk_size: rows per chunk; the working memory is about chunk_size * (E + Q) floats.

    Returns:
        (similarities (Q, K) float32 descending, indices (Q, K) int64 into `embeddings`), with
        K = min(k, N).
    """
    queries = np.asarray(queries, np.float32)
    if queries.ndim != 2 or embeddings.ndim != 2 or queries.shape[1] != embeddings.shape[1]:
        raise ValueError(f'queries {queries.shape} and embeddings {embeddings.shape} must be '
                         f'(Q, E) and (N, E)')
    if k < 1 or chunk_size < 1:
        raise ValueError(f'k and chunk_size must be >= 1, got {k}, {chunk_size}')
    count = embeddings.shape[0]
    k = min(k, count)
    best_scores = np.full((len(queries), 0), -np.inf, np.float32)
    best_index = np.zeros((len(queries), 0), np.int64)
    for start in range(0, count, chunk_size):
        chunk = np.asarray(embeddings[start:start + chunk_size], np.float32)
        scores = queries @ chunk.T                                           # (Q, C)
        if scores.shape[1] > k:
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            scores = np.take_along_axis(scores, top, axis=1)
        else:
            top = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
        best_scores = np.concatenate([best_scores, scores], axis=1)
        best_index = np.concatenate([best_index, top + start], axis=1)
        if best_scores.shape[1] > k:
            keep = np.argpartition(-best_scores, k - 1, axis=1)[:, :k]
            best_scores = np.take_along_axis(best_scores, keep, axis=1)
            best_index = np.take_along_axis(best_index, keep, axis=1)
    order = np.argsort(-best_scores, axis=1, kind='stable')
    return (np.take_along_axis(best_scores, order, axis=1),
            np.take_along_axis(best_index, order, axis=1))


def top_k_hnsw(queries: np.ndarray, embeddings: np.ndarray, k: int, ef_search: int = 1024,
               graph_degree: int = 32, cache_path: str | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Approximate top-k by cosine similarity with a FAISS HNSW graph (optional dependency).

    At 1M 128-d embeddings on 2 (loaded) cores, `benchmarks/ann_search_speed.py` measured exact
    search (numpy, all in memory) at 36.8 ms per query and HNSW (M 32) at 4.6 ms with recall@10
    0.994 (efSearch 1024) or 0.8 ms with 0.98 (efSearch 256), after a one-off build of 154 s;
    the graph is cached at `cache_path` and reused while the embeddings it was built from have
    not changed (same count and content digest).

    Args:
        queries: (Q, E) L2-normalised.
        embeddings: (N, E) L2-normalised, any float dtype.
        k: hits per query (at most N are returned).
        ef_search: HNSW search breadth; higher = better recall, slower.
        graph_degree: HNSW M, used when the graph is built.
        cache_path: where the graph is saved and looked for (None = not cached).

    Returns:
        As `top_k_cosine`: (similarities (Q, K) float32 descending, indices (Q, K) int64).

    Raises:
        ImportError: FAISS is not installed, with how to install it.
    """
    try:
        import faiss
    except ImportError as error:
        raise ImportError('approximate search needs FAISS: pip install faiss-cpu (or '
                          'pip install -e ".[ann]")') from error
    queries = np.ascontiguousarray(queries, np.float32)
    vectors = np.ascontiguousarray(embeddings, np.float32)
    if queries.ndim != 2 or vectors.ndim != 2 or queries.shape[1] != vectors.shape[1]:
        raise ValueError(f'queries {queries.shape} and embeddings {vectors.shape} must be '
                         f'(Q, E) and (N, E)')
    digest = hashlib.sha1(vectors.tobytes()).hexdigest()[:16]
    path = f'{cache_path}.{len(vectors)}-{digest}.hnsw' if cache_path else None
    if path and os.path.exists(path):
        graph = faiss.read_index(path)
    else:
        graph = faiss.IndexHNSWFlat(vectors.shape[1], graph_degree, faiss.METRIC_INNER_PRODUCT)
        graph.add(vectors)
        if path:
            with atomic.replacing(path) as temporary:
                faiss.write_index(graph, temporary)
    graph.hnsw.efSearch = max(ef_search, k)
    similarities, indices = graph.search(queries, min(k, len(vectors)))
    return similarities.astype(np.float32), indices.astype(np.int64)
