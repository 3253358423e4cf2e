"""Runs the joint model over a dataset's gallery and query splits: the arrays of a predictions
file (docs/formats.md#predictions-file, `ps_tf.evaluation.predictions`).

- Gallery: every image of the `gallery` split, in protocol order (`protocol_index`), through
  `JointModel.detect_and_embed`; detections mapped back to original pixels x1, y1, x2, y2
  (`boxes_to_original`). With `use_gt_boxes=True` the ground-truth boxes of each gallery image
  (ignore regions excluded, people without identity included) are embedded instead, with score
  1.0: the re-ID quality with a perfect detector.
- Queries: every example of the `query` split in protocol order; the query box `query/box` is
  embedded in its scene image through the same ROI path (`JointModel.embed_boxes`).

Images are read as the detector reads them (`resize_and_pad` at its `image_size` and
`resize_mode`, both from the stage-1 run: `load_joint_model` returns them).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from ps_tf.data import datasets as datasets_lib
from ps_tf.models.joint import JointModel, PersonSearchModel
from ps_tf.ops.geometry import boxes_to_original, resize_and_pad, scale_boxes

HEADLINE_GALLERY_SIZE = 100   # CUHK-SYSU's standard gallery size
GALLERY_SPLIT = 'gallery'
QUERY_SPLIT = 'query'


def xyxy_to_yxyx(boxes_xyxy: np.ndarray) -> np.ndarray:
    """(..., 4) x1, y1, x2, y2 -> (..., 4) ymin, xmin, ymax, xmax (same units)."""
    return np.asarray(boxes_xyxy)[..., [1, 0, 3, 2]]


def split_examples(dataset: str, split: str, data_dir: str | None,
                   manual_dir=None) -> tf.data.Dataset:
    """The split's examples in file order, with only what evaluation reads: the encoded image,
    its name and protocol index, the ground-truth boxes (original x1, y1, x2, y2) and ignore
    flags, the query box.

    Raises:
        ValueError: the dataset has no such split.
    """
    builder = datasets_lib.get_builder(dataset, data_dir, manual_dir)
    if split not in builder.info.splits:
        raise ValueError(f'{dataset} has no {split!r} split (it has {sorted(builder.info.splits)})')
    decoders = tfds.decode.PartialDecoding(
        {'image': True, 'image/filename': True, 'protocol_index': True,
         'objects': {'box': True, 'ignore': True}, 'query': {'box': True}},
        decoders={'image': tfds.decode.SkipDecoding()})
    return builder.as_dataset(split=split, shuffle_files=False, decoders=decoders)


def _split_input(dataset: str, split: str, image_size: int, batch_size: int,
                 data_dir: str | None, manual_dir, resize_mode: str = 'letterbox'
                 ) -> tf.data.Dataset:
    """Batches of padded images with their annotations; ground truth padded with ignore=True."""

    def parse(example):
        image = tf.io.decode_image(example['image'], channels=3, expand_animations=False)
        image, image_info = resize_and_pad(image, image_size, resize_mode)
        return {'image': image, 'image_info': image_info,
                'gt_boxes': tf.reshape(tf.cast(example['objects']['box'], tf.float32), [-1, 4]),
                'gt_ignore': tf.reshape(tf.cast(example['objects']['ignore'], tf.bool), [-1]),
                'query_box': tf.reshape(tf.cast(example['query']['box'], tf.float32), [4]),
                'filename': example['image/filename'],
                'protocol_index': tf.cast(example['protocol_index'], tf.int64)}

    examples = split_examples(dataset, split, data_dir, manual_dir).map(
        parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return examples.padded_batch(batch_size, padding_values={
        'image': 0.0, 'image_info': 0.0, 'gt_boxes': 0.0, 'gt_ignore': True, 'query_box': 0.0,
        'filename': b'', 'protocol_index': tf.constant(-1, tf.int64)}).prefetch(1)


def _to_model_frame(boxes_xyxy: np.ndarray, image_info: np.ndarray) -> np.ndarray:
    """(M, 4) original pixel x1, y1, x2, y2 -> (M, 4) pixel yxyx in the padded square input."""
    return scale_boxes(tf.constant(xyxy_to_yxyx(boxes_xyxy), tf.float32),
                       tf.constant(image_info, tf.float32)).numpy()


def gallery_predictions(joint: JointModel, dataset: str, image_size: int, batch_size: int = 8,
                        use_gt_boxes: bool = False, data_dir: str | None = None,
                        manual_dir=None, resize_mode: str = 'letterbox'
                        ) -> dict[str, np.ndarray]:
    """Detections (or ground-truth boxes) and their embeddings on the gallery split.

    Returns:
        `gallery_image_names` (N,) str in protocol order; `det_image_index` (M,) int64 into it;
        `det_boxes` (M, 4) float32 original pixel x1, y1, x2, y2; `det_scores` (M,) float32;
        `det_embeddings` (M, E) float32 L2-normalised.
    """
    names, order, image_index, boxes, scores, embeddings = [], [], [], [], [], []
    for batch in _split_input(dataset, GALLERY_SPLIT, image_size, batch_size, data_dir,
                              manual_dir, resize_mode).as_numpy_iterator():
        images = tf.constant(batch['image'])
        first = len(names)
        names += [name.decode() for name in batch['filename']]
        order += batch['protocol_index'].tolist()
        if use_gt_boxes:
            row, slot = np.nonzero(~batch['gt_ignore'])
            original = batch['gt_boxes'][row, slot]
            model_frame = np.concatenate(
                [_to_model_frame(original[row == i], batch['image_info'][i])
                 for i in range(len(images))]) if len(row) else np.zeros((0, 4), np.float32)
            # rows are grouped by image already (np.nonzero is row-major)
            embedded = joint.embed_boxes(images, tf.constant(model_frame, tf.float32),
                                         tf.constant(row.astype(np.int32))).numpy()
            image_index.append(first + row)
            boxes.append(original)
            scores.append(np.ones(len(row), np.float32))
            embeddings.append(embedded)
            continue
        outputs = joint.detect_and_embed(images, tf.constant(batch['image_info'][:, 1]))
        original = boxes_to_original(outputs['detection_boxes'],
                                     tf.constant(batch['image_info'])).numpy()
        valid = np.arange(original.shape[1])[None] < outputs['num_detections'].numpy()[:, None]
        row, slot = np.nonzero(valid)
        image_index.append(first + row)
        boxes.append(original[row, slot])
        scores.append(outputs['detection_scores'].numpy()[row, slot])
        embeddings.append(outputs['detection_embeddings'].numpy()[row, slot])
    logging.info('%s gallery: %d images, %d %s', dataset, len(names), sum(map(len, scores)),
                 'ground-truth boxes' if use_gt_boxes else 'detections')
    return gallery_arrays(names, order, image_index, boxes, scores, embeddings,
                          joint.embedding_dim)


def gallery_arrays(names: list[str], order: list[int], image_index: list[np.ndarray],
                   boxes: list[np.ndarray], scores: list[np.ndarray],
                   embeddings: list[np.ndarray], embedding_dim: int) -> dict[str, np.ndarray]:
    """The gallery arrays of a predictions file, in protocol order, from what a pass over the
    gallery split collected in reading order: each image's name and `protocol_index`, and per
    batch the detections' image (index into the names), boxes, scores and embeddings."""
    to_protocol = np.empty(len(order), np.int64)   # reading position -> protocol position
    to_protocol[np.argsort(order, kind='stable')] = np.arange(len(order))
    det_image = (to_protocol[np.concatenate(image_index).astype(np.int64)] if image_index
                 else np.zeros(0, np.int64))
    sort = np.argsort(det_image, kind='stable')
    return {
        'gallery_image_names': np.asarray(names, dtype=str)[np.argsort(order, kind='stable')],
        'det_image_index': det_image[sort].astype(np.int64),
        'det_boxes': _concat(boxes, (0, 4))[sort].astype(np.float32),
        'det_scores': _concat(scores, (0,))[sort].astype(np.float32),
        'det_embeddings': _concat(embeddings, (0, embedding_dim))[sort].astype(np.float32),
    }


def query_embeddings(joint: JointModel, dataset: str, image_size: int, batch_size: int = 8,
                     data_dir: str | None = None, manual_dir=None,
                     resize_mode: str = 'letterbox') -> np.ndarray:
    """(Q, E) float32 L2-normalised embeddings of the query boxes, in protocol query order."""
    order, embeddings = [], []
    for batch in _split_input(dataset, QUERY_SPLIT, image_size, batch_size, data_dir,
                              manual_dir, resize_mode).as_numpy_iterator():
        model_frame = np.concatenate([_to_model_frame(box[None], info) for box, info
                                      in zip(batch['query_box'], batch['image_info'])])
        embeddings.append(joint.embed_boxes(
            tf.constant(batch['image']), tf.constant(model_frame, tf.float32),
            tf.range(len(model_frame), dtype=tf.int32)).numpy())
        order += batch['protocol_index'].tolist()
    return _concat(embeddings, (0, joint.embedding_dim))[np.argsort(order, kind='stable')
                                                         ].astype(np.float32)


def predict_dataset(joint: JointModel, dataset: str, image_size: int, batch_size: int = 8,
                    use_gt_boxes: bool = False, data_dir: str | None = None,
                    manual_dir=None, resize_mode: str = 'letterbox') -> dict[str, np.ndarray]:
    """The arrays of a predictions file for a dataset's gallery and query splits.

    Args:
        joint: the joint model.
        dataset: TFDS name (with config) of a dataset with `gallery` and `query` splits.
        image_size: the detector's input side, pixels.
        batch_size: images per forward pass.
        use_gt_boxes: embed the gallery's ground-truth boxes (score 1.0) instead of detections.
        data_dir, manual_dir: see `ps_tf.data.datasets.get_builder`.
        resize_mode: the detector's 'letterbox' or 'stretch' (`resize_and_pad`).

    Returns:
        The keys of `ps_tf.evaluation.predictions.KEYS` (`Predictions(**result)` builds the
        object): boxes as original pixel x1, y1, x2, y2, embeddings L2-normalised.
    """
    result = gallery_predictions(joint, dataset, image_size, batch_size, use_gt_boxes, data_dir,
                                 manual_dir, resize_mode)
    result['query_embeddings'] = query_embeddings(joint, dataset, image_size, batch_size,
                                                  data_dir, manual_dir, resize_mode)
    return result


def search_metrics(joint: PersonSearchModel, dataset: str, image_size: int, batch_size: int = 8,
                   data_dir: str | None = None, manual_dir=None,
                   resize_mode: str = 'letterbox') -> dict[str, float]:
    """Search mAP / top-1 of the joint model on `dataset`'s gallery and query splits.

    `predict_dataset` scored by `evaluator` against the dataset's protocol. `mAP` and `top1` are
    the headline: CUHK-SYSU's gallery of 100 (else the largest finite gallery size the dataset
    defines; PRW: its one gallery); every row also gives `mAP/<gallery>` and `top1/<gallery>`
    (-1 = the full set).
    """
    from ps_tf.evaluation import evaluator, predictions, protocol

    arrays = predict_dataset(joint, dataset, image_size, batch_size,
                             data_dir=data_dir, manual_dir=manual_dir, resize_mode=resize_mode)
    rows = evaluator.evaluate_predictions(protocol.load_protocol(dataset, data_dir),
                                          predictions.Predictions(**arrays))
    metrics = {'gallery_size': None}
    sizes = [row['gallery_size'] for row in rows if row.get('gallery_size', -1) > 0]
    headline = rows[0]
    if sizes:
        size = HEADLINE_GALLERY_SIZE if HEADLINE_GALLERY_SIZE in sizes else max(sizes)
        headline = next(row for row in rows if row.get('gallery_size') == size)
        metrics['gallery_size'] = size
    metrics.update(mAP=headline['mAP'], top1=headline['top1'], det_ap=headline['det_ap'])
    for row in rows:
        gallery = row.get('gallery_size', row.get('gallery'))
        metrics[f'mAP/{gallery}'] = row['mAP']
        metrics[f'top1/{gallery}'] = row['top1']
    return metrics


def _concat(parts: list[np.ndarray], empty_shape: tuple[int, ...]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(empty_shape, np.float32)
