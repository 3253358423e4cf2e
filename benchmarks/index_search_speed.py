"""Exact search over a large gallery index: time per query and peak memory of the chunked search
(`ps_tf.search.index.top_k_cosine` on float16 embeddings memory-mapped from disk) against a
naive baseline measured in the same run (all embeddings loaded as float32, one full matrix
product per query batch, then top-k).

A synthetic index of `--num_embeddings` L2-normalised `--dim`-d float16 embeddings is written
to a temporary .npy; each method runs in its own child process so that its peak resident memory
(`resource.getrusage` ru_maxrss) is its own. Queries are perturbed copies of index rows. Both
methods are exact: the benchmark checks that they return the same top-10 (recall@10).

    python benchmarks/index_search_speed.py
    python benchmarks/index_search_speed.py --num_embeddings=1000000 --dim=128 --queries=20
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

flags.DEFINE_integer('num_embeddings', 1_000_000, 'Rows of the synthetic index.')
flags.DEFINE_integer('dim', 128, 'Embedding dimension.')
flags.DEFINE_integer('queries', 20, 'Queries timed one at a time (and once as one batch).')
flags.DEFINE_integer('top_k', 10, 'Hits per query.')
flags.DEFINE_integer('chunk_size', 65536, 'Rows per chunk of the chunked search.')
flags.DEFINE_string('child', None, 'Internal: run one method (chunked | naive) and print JSON.')
flags.DEFINE_string('workdir', None, 'Internal: where the index and queries are.')
FLAGS = flags.FLAGS


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux: KiB


def write_index(path: str, count: int, dim: int, seed: int = 0, block: int = 100_000) -> None:
    """A (count, dim) float16 .npy of random unit vectors, written block by block."""
    rng = np.random.default_rng(seed)
    array = np.lib.format.open_memmap(path, mode='w+', dtype=np.float16, shape=(count, dim))
    for start in range(0, count, block):
        rows = rng.standard_normal((min(block, count - start), dim), dtype=np.float32)
        array[start:start + len(rows)] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    array.flush()
    del array


def run_child(method: str, workdir: str) -> dict:
    from ps_tf.search.index import top_k_cosine

    queries = np.load(os.path.join(workdir, 'queries.npy'))
    start = time.perf_counter()
    embeddings = np.load(os.path.join(workdir, 'index.npy'), mmap_mode='r')
    if method == 'naive':
        embeddings = np.asarray(embeddings, np.float32)      # the whole index in memory

        def search(q):
            scores = q @ embeddings.T
            top = np.argpartition(-scores, FLAGS.top_k - 1, axis=1)[:, :FLAGS.top_k]
            order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1)
            return np.take_along_axis(top, order, 1)
    else:
        def search(q):
            return top_k_cosine(q, embeddings, FLAGS.top_k, FLAGS.chunk_size)[1]
    load_seconds = time.perf_counter() - start
    search(queries[:1])                                       # warm-up (page cache, BLAS)
    times, hits = [], []
    for query in queries:
        start = time.perf_counter()
        hits.append(search(query[None])[0])
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    batch_hits = search(queries)
    batch_seconds = time.perf_counter() - start
    return {'method': method, 'load_s': load_seconds, 'median_query_s': float(np.median(times)),
            'batch_query_s': batch_seconds / len(queries), 'peak_rss_mb': _peak_rss_mb(),
            'hits': np.asarray(hits).tolist(), 'batch_hits': np.asarray(batch_hits).tolist()}


def recall_at_k(hits, reference) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(hits, reference)]))


def main(argv) -> None:
    del argv
    if FLAGS.child:
        print(json.dumps(run_child(FLAGS.child, FLAGS.workdir)))
        return
    with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        write_index(os.path.join(workdir, 'index.npy'), FLAGS.num_embeddings, FLAGS.dim)
        index = np.load(os.path.join(workdir, 'index.npy'), mmap_mode='r')
        rng = np.random.default_rng(1)
        rows = rng.choice(FLAGS.num_embeddings, FLAGS.queries, replace=False)
        queries = index[np.sort(rows)].astype(np.float32) + rng.normal(
            0, 0.02, (FLAGS.queries, FLAGS.dim)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        np.save(os.path.join(workdir, 'queries.npy'), queries)
        del index
        print(f'index: {FLAGS.num_embeddings:,} x {FLAGS.dim} float16 '
              f'({FLAGS.num_embeddings * FLAGS.dim * 2 / 2**20:.0f} MiB on disk), written in '
              f'{time.perf_counter() - start:.1f} s; {FLAGS.queries} queries, top-{FLAGS.top_k}')
        results = {}
        for method in ('chunked', 'naive'):
            output = subprocess.run(
                [sys.executable, os.path.abspath(__file__), f'--child={method}',
                 f'--workdir={workdir}', f'--num_embeddings={FLAGS.num_embeddings}',
                 f'--dim={FLAGS.dim}', f'--top_k={FLAGS.top_k}',
                 f'--chunk_size={FLAGS.chunk_size}'],
                capture_output=True, text=True, check=True)
            results[method] = json.loads(output.stdout.strip().splitlines()[-1])
    chunked, naive = results['chunked'], results['naive']
    print(f'| method | load s | s/query (1 at a time) | s/query (batch of {FLAGS.queries}) '
          f'| peak RSS MiB |')
    print('|---|---|---|---|---|')
    for name, label in (('chunked', f'chunked float16 memmap (chunk {FLAGS.chunk_size})'),
                        ('naive', 'naive: all float32 in memory, full matmul')):
        r = results[name]
        print(f'| {label} | {r["load_s"]:.2f} | {r["median_query_s"]:.4f} | '
              f'{r["batch_query_s"]:.4f} | {r["peak_rss_mb"]:.0f} |')
    ratio = chunked['median_query_s'] / naive['median_query_s']
    print(f'chunked / naive: time per query {ratio:.2f}x'
          f' (batched {chunked["batch_query_s"] / naive["batch_query_s"]:.2f}x), peak RSS '
          f'{chunked["peak_rss_mb"] / naive["peak_rss_mb"]:.2f}x')
    print(f'recall@{FLAGS.top_k} of chunked vs naive: '
          f'{recall_at_k(chunked["hits"], naive["hits"]):.4f} (one at a time), '
          f'{recall_at_k(chunked["batch_hits"], naive["batch_hits"]):.4f} (batched)')


if __name__ == '__main__':
    app.run(main)
