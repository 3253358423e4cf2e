"""Would an approximate index pay off for `search.py`? FAISS HNSW against exact search, at 1M.

Measures, in one run on one synthetic index (`--num_embeddings` L2-normalised `--dim`-d float32
embeddings drawn around `--clusters` centres, as person embeddings cluster by identity; queries
are perturbed copies of index rows):
- exact: numpy, the whole index in memory, one matrix product per query (the baseline);
- exact: FAISS `IndexFlatIP` (BLAS);
- approximate: FAISS `IndexHNSWFlat` (M = `--hnsw_m`) at several `efSearch`, with its build time
  and recall@10 against the exact top-10.
Each line prints seconds per query (queries one at a time) and the speed-up over the baseline.

FAISS is not a ps_tf dependency; run this in an environment that has it:

    python3 -m venv /tmp/faissenv && /tmp/faissenv/bin/pip install "numpy<2" faiss-cpu absl-py
    /tmp/faissenv/bin/python benchmarks/ann_search_speed.py
"""

from __future__ import annotations

import time

import numpy as np
from absl import app, flags

flags.DEFINE_integer('num_embeddings', 1_000_000, 'Rows of the synthetic index.')
flags.DEFINE_integer('dim', 128, 'Embedding dimension.')
flags.DEFINE_integer('clusters', 20_000, 'Identity-like cluster centres of the embeddings.')
flags.DEFINE_integer('queries', 50, 'Queries, timed one at a time.')
flags.DEFINE_integer('top_k', 10, 'Hits per query.')
flags.DEFINE_integer('hnsw_m', 32, 'HNSW graph degree.')
flags.DEFINE_list('ef_search', ['64', '128', '256', '512', '1024'],
                  'HNSW efSearch values to measure.')
FLAGS = flags.FLAGS


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def synthetic_index(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centres = _normalise(rng.standard_normal((FLAGS.clusters, FLAGS.dim)))
    rows = []
    for start in range(0, FLAGS.num_embeddings, 100_000):
        count = min(100_000, FLAGS.num_embeddings - start)
        noise = 0.5 * rng.standard_normal((count, FLAGS.dim)) / np.sqrt(FLAGS.dim)
        rows.append(_normalise(centres[rng.integers(0, FLAGS.clusters, count)] + noise))
    embeddings = np.concatenate(rows)
    picked = embeddings[rng.choice(len(embeddings), FLAGS.queries, replace=False)]
    queries = _normalise(picked + 0.3 * rng.standard_normal(picked.shape) / np.sqrt(FLAGS.dim))
    return embeddings, queries


def timed(search, queries: np.ndarray) -> tuple[float, np.ndarray]:
    """Seconds per query (one at a time) and the (Q, k) ids found."""
    found = []
    start = time.perf_counter()
    for query in queries:
        found.append(search(query[None]))
    return (time.perf_counter() - start) / len(queries), np.concatenate(found)


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact)]))


def main(argv):
    del argv
    import faiss

    k = FLAGS.top_k
    embeddings, queries = synthetic_index(np.random.default_rng(0))
    print(f'{len(embeddings):,} x {FLAGS.dim} float32 embeddings, {len(queries)} queries, '
          f'top-{k}; faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads')

    def numpy_exact(query):
        scores = embeddings @ query[0]
        top = np.argpartition(-scores, k)[:k]
        return top[np.argsort(-scores[top])][None]

    baseline, exact = timed(numpy_exact, queries)
    print(f'exact numpy (baseline)         {baseline * 1e3:8.2f} ms/query   1.00x')

    flat = faiss.IndexFlatIP(FLAGS.dim)
    flat.add(embeddings)
    seconds, found = timed(lambda q: flat.search(q, k)[1], queries)
    print(f'exact faiss IndexFlatIP        {seconds * 1e3:8.2f} ms/query {baseline / seconds:6.2f}x'
          f'   recall@{k} {recall(found, exact):.4f}')

    hnsw = faiss.IndexHNSWFlat(FLAGS.dim, FLAGS.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    start = time.perf_counter()
    hnsw.add(embeddings)
    print(f'HNSW M={FLAGS.hnsw_m} build: {time.perf_counter() - start:.1f} s')
    for ef in (int(v) for v in FLAGS.ef_search):
        hnsw.hnsw.efSearch = ef
        seconds, found = timed(lambda q: hnsw.search(q, k)[1], queries)
        print(f'HNSW efSearch={ef:<4}             {seconds * 1e3:8.2f} ms/query '
              f'{baseline / seconds:6.2f}x   recall@{k} {recall(found, exact):.4f}')


if __name__ == '__main__':
    app.run(main)
