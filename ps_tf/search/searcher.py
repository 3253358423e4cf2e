"""The model side of search: a trained model's detection and embedding signatures, the gallery
index kept up to date with them, and the query's embedding.

A `Searcher` wraps the `detect_images` and `embed_boxes` signatures of `ps_tf.serving`, from a
SavedModel or built from a checkpoint, so that search behaves the same either way.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
from absl import logging

from ps_tf.search.media import (IMAGE_TIME, encode_lossless, is_video, read_image,
                                sampled_frame_count, video_frames)

FRAME_BATCH = 4   # video frames per detect_images call


class Searcher:
    """The model's `detect_images` and `embed_boxes` signatures (`ps_tf/serving.py`) and a count
    of the calls made to them.

    Args:
        detect_images: called as `detect_images(images=(B, H, W, 3) uint8)`, returns the
            detection outputs of `ps_tf.serving`.
        embed_boxes: called as `embed_boxes(image_bytes=() string, boxes=(M, 4) float32)`,
            returns {'embeddings': (M, E)}.
        embedding_dim: E.
        model_id: names the model (an index of another model is not reused).
    """

    def __init__(self, detect_images, embed_boxes, embedding_dim: int, model_id: str):
        self._detect, self._embed = detect_images, embed_boxes
        self.embedding_dim, self.model_id = int(embedding_dim), model_id
        self.model_calls = 0

    @classmethod
    def load(cls, model: str, score_threshold: float | None = None,
             max_detections: int | None = None) -> 'Searcher':
        """From a SavedModel directory (or a directory of numbered versions), or anything
        `locate_stage2` accepts; `score_threshold` and `max_detections` set the detector of a
        checkpoint (a SavedModel keeps its exported settings)."""
        import tensorflow as tf

        from ps_tf import serving
        from ps_tf.models.loading import locate_stage2

        saved_model = serving.find_saved_model(model)
        if saved_model:
            signatures = tf.saved_model.load(saved_model).signatures
            embedding_dim = signatures['embed_boxes'].structured_outputs['embeddings'].shape[-1]
            stamp = os.stat(os.path.join(saved_model, 'saved_model.pb')).st_mtime_ns
            model_id = f'savedmodel:{os.path.abspath(saved_model)}@{stamp}'
        else:
            module = serving.load_serving_module(model, None, score_threshold, max_detections)
            reid_dir, checkpoint = locate_stage2(model)
            checkpoint = checkpoint or tf.train.latest_checkpoint(
                os.path.join(reid_dir, 'checkpoints'))
            signatures, embedding_dim = module.signatures(), module.embedding_dim
            model_id = (f'checkpoint:{os.path.abspath(checkpoint)}@score>='
                        f'{module.score_threshold},max{module.max_detections}')
        return cls(signatures['detect_images'], signatures['embed_boxes'], embedding_dim,
                   model_id)

    def detect(self, images: np.ndarray) -> list[dict[str, np.ndarray]]:
        """(B, H, W, 3) uint8 -> per image `boxes` (M, 4) x1, y1, x2, y2, `scores`,
        `embeddings` (M, E)."""
        self.model_calls += 1
        outputs = self._detect(images=np.asarray(images, np.uint8))
        outputs = {k: np.asarray(v) for k, v in outputs.items()}
        return [{'boxes': outputs['detection_boxes'][i, :n],
                 'scores': outputs['detection_scores'][i, :n],
                 'embeddings': outputs['detection_embeddings'][i, :n]}
                for i, n in enumerate(outputs['num_detections'])]

    def embed(self, image_bytes: bytes, boxes_xyxy: np.ndarray) -> np.ndarray:
        """(M, E) embeddings of original pixel x1, y1, x2, y2 boxes in an encoded image."""
        self.model_calls += 1
        outputs = self._embed(image_bytes=image_bytes,
                              boxes=np.reshape(boxes_xyxy, (-1, 4)).astype(np.float32))
        return np.asarray(outputs['embeddings'])


def _load_index(searcher: Searcher, index_path: str):
    """The index at `index_path` if it holds this model's embeddings, else a new one."""
    from ps_tf.search.index import GalleryIndex

    if os.path.exists(index_path):
        index = GalleryIndex.load(index_path)
        if index.model_id == searcher.model_id:
            return index
        logging.warning('%s was made by %s, not %s: indexing again', index_path,
                        index.model_id, searcher.model_id)
    return GalleryIndex(searcher.model_id, searcher.embedding_dim)


def update_index(searcher: Searcher, paths: list[str], index_path: str, fps: float,
                 progress: bool = True, shard: tuple[int, int] | None = None,
                 on_file=None, on_frame=None):
    """Loads (or starts) the index and runs only new or changed files through the model.

    With `shard` = (I, N), indexes only every N-th file from the I-th (`index.shard_of`) into
    the shard file `index.shard_path(index_path, I, N)`, skipping files the index already holds;
    without, first merges any complete set of shard files into the index (`index.merge_shards`).

    `on_file(done, total)`, if given, is called before the first file and after each one (the
    web app's progress bar). `on_frame(path, done, total)`, if given, is called for each video
    before its first frame and after each batch of `FRAME_BATCH` frames, `done` counting its
    sampled frames so far and `total` their expected number (`sampled_frame_count`, None when
    the file does not say): a long video is one file but minutes of model calls.

    Returns:
        (the index (or shard), the number of files indexed in this call).
    """
    from tqdm import tqdm

    from ps_tf.search.index import SourceKey, merge_shards, shard_of, shard_path

    index = _load_index(searcher, index_path)
    merged_shards = []
    if shard:
        paths = shard_of(paths, *shard)
        known = index
        index_path = shard_path(index_path, *shard)
        index = _load_index(searcher, index_path)
    else:
        merged_files, merged_shards = merge_shards(index, index_path)
        if merged_shards:
            print(f'index {index_path}: merged {merged_files} files from '
                  f'{len(merged_shards)} shard files', flush=True)
    keys = [SourceKey.of(p, fps if is_video(p) else 0.0) for p in paths]
    todo = index.missing(keys)
    if shard:
        todo = known.missing(todo)
    logging.info('gallery: %d files, %d already indexed, %d to index', len(keys),
                 len(keys) - len(todo), len(todo))
    if on_file:
        on_file(0, len(todo))
    for done, key in enumerate(tqdm(todo, desc='indexing', unit='file', disable=not progress)):
        times, found = [], []
        if is_video(key.path):
            # Streamed FRAME_BATCH frames at a time: an hour of 1080p at 1 frame/s would be
            # 22 GB decoded at once.
            frames = video_frames(key.path, key.fps)
            expected = sampled_frame_count(key.path, key.fps) if on_frame else None
            if on_frame:
                on_frame(key.path, 0, expected)
            while batch := list(itertools.islice(frames, FRAME_BATCH)):
                for (time, _), detections in zip(batch, searcher.detect(
                        np.stack([frame for _, frame in batch]))):
                    times.append(np.full(len(detections['scores']), time))
                    found.append(detections)
                if on_frame:
                    on_frame(key.path, len(times), expected)
        else:
            detections = searcher.detect(read_image(key.path)[None])[0]
            times.append(np.full(len(detections['scores']), IMAGE_TIME))
            found.append(detections)
        index.add(key, np.concatenate(times) if times else np.zeros(0),
                  *[np.concatenate([d[name] for d in found]) if found else np.zeros((0,))
                    for name in ('boxes', 'scores', 'embeddings')])
        if on_file:
            on_file(done + 1, len(todo))
    if todo or merged_shards:
        index.save(index_path)
    for path in merged_shards:   # only once the index holding them is saved
        os.remove(path)
    print(f'index {index_path}: {len(index)} detections; {len(todo)} new files indexed '
          f'({len(keys) - len(todo)} reused)', flush=True)
    return index, len(todo)


def query_embedding(searcher: Searcher, query_image: str | None = None,
                    query_box: str | None = None, query_crop: str | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(E,) query embedding, the query image (H, W, 3) and its box x1, y1, x2, y2."""
    if bool(query_crop) == bool(query_image):
        raise ValueError('give either --query_crop or --query_image with --query_box')
    path = query_crop or query_image
    image = read_image(path)
    if query_crop:
        box = np.array([0, 0, image.shape[1], image.shape[0]], np.float32)
    else:
        try:
            box = np.array([float(v) for v in (query_box or '').split(',')], np.float32)
        except ValueError:
            box = np.zeros(0)
        if box.shape != (4,) or box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f'--query_box must be x1,y1,x2,y2 pixels with x2 > x1 and y2 > y1, '
                             f'got {query_box!r}')
    # The pixels read_image decoded, not the file's bytes: see read_image.
    embedding = searcher.embed(encode_lossless(image), box[None])[0]
    return embedding, image, box
