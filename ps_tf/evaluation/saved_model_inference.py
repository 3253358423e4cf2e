"""The arrays of a predictions file from an exported SavedModel (`export/`), so that the model a
TF Serving deployment runs is scored by the same protocol as the checkpoint it came from.

It reads the dataset's `gallery` and `query` splits as `ps_tf.evaluation.inference` does, but
hands the model the encoded image bytes: the SavedModel decodes, resizes and pads inside its
graph (`ps_tf.serving`), with the same ops as the checkpoint path, and returns boxes in original
pixels. Gallery images go through `serving_default` (a batch of encoded images of any sizes);
ground-truth gallery boxes (`use_gt_boxes`) and query boxes through `embed_boxes`, one image at a
time. The detection settings (score threshold, detections per image) are the ones the model was
exported with.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from absl import logging

from ps_tf import serving
from ps_tf.evaluation.inference import GALLERY_SPLIT, QUERY_SPLIT, gallery_arrays, \
    split_examples


def load_signatures(path: str) -> dict:
    """The signatures of the SavedModel at `path` (itself or a folder of numbered versions).

    Raises:
        ValueError: no SavedModel there, or one without ps_tf's signatures.
    """
    saved_model = serving.find_saved_model(path)
    if not saved_model:
        raise ValueError(f'{path} holds no SavedModel (saved_model.pb, or numbered version '
                         f'folders holding one): export one with ps-export '
                         f'(export/export_saved_model.py)')
    signatures = tf.saved_model.load(saved_model).signatures
    missing = {serving.SERVING_DEFAULT, 'embed_boxes'} - set(signatures)
    if missing:
        raise ValueError(f'{saved_model} is not a ps_tf export: it lacks the signatures '
                         f'{sorted(missing)}')
    return signatures


def predict_dataset(signatures: dict, dataset: str, batch_size: int = 8,
                    use_gt_boxes: bool = False, data_dir: str | None = None,
                    manual_dir=None) -> dict[str, np.ndarray]:
    """As `ps_tf.evaluation.inference.predict_dataset`, with a loaded SavedModel's signatures
    (`load_signatures`)."""
    detect, embed = signatures[serving.SERVING_DEFAULT], signatures['embed_boxes']
    embedding_dim = int(embed.structured_outputs['embeddings'].shape[-1])
    names, order, image_index, boxes, scores, embeddings = [], [], [], [], [], []
    for batch in _chunks(split_examples(dataset, GALLERY_SPLIT, data_dir, manual_dir), batch_size):
        first = len(names)
        names += [example['image/filename'].decode() for example in batch]
        order += [int(example['protocol_index']) for example in batch]
        if use_gt_boxes:
            for i, example in enumerate(batch):
                keep = ~example['objects']['ignore'].astype(bool)
                gt_xyxy = np.reshape(example['objects']['box'], (-1, 4))[keep]
                if len(gt_xyxy):
                    embedded = embed(image_bytes=tf.constant(example['image']),
                                     boxes=tf.constant(gt_xyxy, tf.float32))['embeddings']
                    embeddings.append(embedded.numpy())
                image_index.append(np.full(len(gt_xyxy), first + i))
                boxes.append(gt_xyxy.astype(np.float32))
                scores.append(np.ones(len(gt_xyxy), np.float32))
            continue
        encoded = tf.constant([example['image'] for example in batch])
        outputs = {k: v.numpy() for k, v in detect(image_bytes=encoded).items()}
        valid = (np.arange(outputs['detection_boxes'].shape[1])[None]
                 < outputs['num_detections'][:, None])
        row, slot = np.nonzero(valid)
        image_index.append(first + row)
        boxes.append(outputs['detection_boxes'][row, slot])
        scores.append(outputs['detection_scores'][row, slot])
        embeddings.append(outputs['detection_embeddings'][row, slot])
    logging.info('%s gallery: %d images, %d %s (SavedModel)', dataset, len(names),
                 sum(map(len, scores)), 'ground-truth boxes' if use_gt_boxes else 'detections')
    result = gallery_arrays(names, order, image_index, boxes, scores, embeddings, embedding_dim)
    query_order, queries = [], []
    for example in split_examples(dataset, QUERY_SPLIT, data_dir, manual_dir).as_numpy_iterator():
        queries.append(embed(image_bytes=tf.constant(example['image']),
                             boxes=tf.constant(example['query']['box'][None], tf.float32)
                             )['embeddings'].numpy())
        query_order.append(int(example['protocol_index']))
    result['query_embeddings'] = _concat(queries, (0, embedding_dim))[
        np.argsort(query_order, kind='stable')].astype(np.float32)
    return result


def _chunks(examples: tf.data.Dataset, size: int):
    """Lists of up to `size` examples (numpy), in reading order."""
    chunk = []
    for example in examples.as_numpy_iterator():
        chunk.append(example)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _concat(parts: list[np.ndarray], empty_shape: tuple[int, ...]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(empty_shape, np.float32)
