"""Feature pooling: the frozen stage-1 trunk's shared maps, ROI-pooled at every labelled
ground-truth box of the re-ID dataset(s), written as pooled-feature TFRecords
(docs/architecture.md#feature-pooling).

Every image is read as the detector reads it (`resize_and_pad` at the detector's `image_size` and
`resize_mode`); its ground-truth boxes (`objects/bbox`, clipped to the image) are scaled to the
square model input (`scale_boxes`) and ROI-aligned on the trunk's last map
(`ps_tf.ops.geometry.roi_align`) to the variant's pooled size. Boxes without an identity
(person_id -1, ignore regions included) are not written. Identities are the global labels of an
`IdentityMap` over all the re-ID datasets, so they stay unique when several datasets are
aggregated.

The disjoint baseline (variant 'Disj') goes through the same code: its "features" are the
ground-truth boxes cropped from the padded input image itself (no trunk) at 256 x 128, as
`DisjointModel` crops detections, and stored as uint8 images (`ps_tf.models.stage2`).

Work units and resume. The images of each dataset are taken in TFDS' deterministic file order and
cut into contiguous ranges of `images_per_shard` (`split_into_shards`); shard i of the run reads
the TFDS slice `split[start:end]` of its dataset. `ShardedWriter` writes each shard atomically, so
a rerun of the same command recomputes only the shards that are not complete, and refuses to mix
in features of another checkpoint, variant or dtype.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from typing import Iterator, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from ps_tf.data import datasets as datasets_lib
from ps_tf.data.decoder import decode_example
from ps_tf.data.pooled import records as pooled_records
from ps_tf.data.pooled import manifest as pooled_manifest
from ps_tf.models.backbone import shared_level
from ps_tf.models.disjoint import DISJOINT
from ps_tf.models.reid import SNIPPET_SIZE, pooled_shape, roi_size
from ps_tf.ops.geometry import check_resize_mode, resize_and_pad, roi_align, scale_boxes


@dataclasses.dataclass(frozen=True)
class ShardWork:
    """The images of one shard: `split[start:end]` of `dataset`, holding `labelled_boxes`
    boxes with an identity (the records the shard will hold)."""
    dataset: str
    split: str
    start: int
    end: int
    labelled_boxes: int = 0

    @property
    def tfds_split(self) -> str:
        return f'{self.split}[{self.start}:{self.end}]'


def read_person_ids(dataset: str, split: str, data_dir: str | None = None,
                    manual_dir=None) -> tuple[int, np.ndarray, np.ndarray]:
    """The number of images of a split and every box's person_id (no image decoded).

    Returns:
        (num_images, person_ids int64 (K,) over all images, -1 included, labelled boxes per
        image int64 (num_images,)).
    """
    builder = datasets_lib.get_builder(dataset, data_dir, manual_dir)
    examples = builder.as_dataset(split=split, shuffle_files=False, decoders=tfds.decode
                                  .PartialDecoding({'objects': {'person_id': True}}))
    ids = []
    for example in examples.as_numpy_iterator():
        ids.append(np.asarray(example['objects']['person_id'], np.int64).reshape(-1))
    labelled = np.array([np.count_nonzero(i >= 0) for i in ids], np.int64)
    return len(ids), np.concatenate(ids) if ids else np.zeros(0, np.int64), labelled


def plan_shards(datasets: Sequence[str], split: str, images_per_shard: int,
                data_dir: str | None = None, manual_dir=None
                ) -> tuple[list[ShardWork], pooled_manifest.IdentityMap]:
    """The shards of a pooling run and the global identity map of its datasets.

    Deterministic: the same datasets and settings always give the same shards and labels.
    """
    shards, person_ids = [], {}
    for dataset in sorted(datasets):
        num_images, person_ids[dataset], labelled = read_person_ids(dataset, split, data_dir,
                                                                    manual_dir)
        ranges = pooled_records.split_into_shards(list(range(num_images)), images_per_shard)
        shards += [ShardWork(dataset, split, r[0], r[-1] + 1, int(labelled[r[0]:r[-1] + 1].sum()))
                   for r in ranges if r]
    identity_map = pooled_manifest.IdentityMap.from_person_ids(person_ids)
    if not len(identity_map):
        raise ValueError(f'the {split} split of {list(datasets)} holds no labelled person')
    return shards, identity_map


def _pooling_input(work: ShardWork, image_size: int, batch_size: int, data_dir: str | None,
                   manual_dir, resize_mode: str = 'letterbox') -> tf.data.Dataset:
    """Batches of padded images and their ground truth (padded with person_id -1)."""

    def parse(example):
        decoded = decode_example(example)
        image, image_info = resize_and_pad(decoded['image'], image_size, resize_mode)
        return {'image': image,
                'boxes': scale_boxes(decoded['boxes'], image_info),     # pixel yxyx, model frame
                'annotated_boxes': decoded['annotated_boxes'],          # pixel x1y1x2y2, original
                'person_id': decoded['person_id'],
                'filename': decoded['filename']}

    dataset = datasets_lib.load_split(work.dataset, work.tfds_split, data_dir, manual_dir)
    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.padded_batch(batch_size, padding_values={
        'image': 0.0, 'boxes': 0.0, 'annotated_boxes': 0.0,
        'person_id': tf.constant(-1, tf.int64), 'filename': b''}).prefetch(1)


class FeaturePooler:
    """ROI-pools the ground-truth boxes of image batches on a frozen trunk.

    Args:
        trunk: the stage-1 trunk (images -> {'C2', ..., 'C<k>'}), run in inference mode; None
            for 'Disj' (crops of the image).
        variant: 'J2', 'J3', 'J4' or 'Disj'.
        image_size: side of the square model input, pixels.
        resize_mode: 'letterbox' or 'stretch' (`resize_and_pad`), as the detector was trained.
    """

    def __init__(self, trunk: tf.keras.Model | None, variant: str, image_size: int,
                 resize_mode: str = 'letterbox'):
        self.trunk = trunk
        self.variant = variant
        self.image_size = image_size
        self.resize_mode = check_resize_mode(resize_mode)
        self.disjoint = variant == DISJOINT
        if not self.disjoint and trunk is None:
            raise ValueError(f'pooling {variant} features needs the stage-1 trunk')
        self.pooled_shape = SNIPPET_SIZE + (3,) if self.disjoint else pooled_shape(variant)
        self._roi_size = SNIPPET_SIZE if self.disjoint else roi_size(variant)
        self._shared_name = None if self.disjoint else f'C{shared_level(variant)}'

    @tf.function(reduce_retracing=True)
    def pool(self, images: tf.Tensor, boxes_yxyx: tf.Tensor,
             box_image_index: tf.Tensor) -> tf.Tensor:
        """Pooled features of boxes.

        Args:
            images: (B, S, S, 3) float32 in [0, 255], padded squares.
            boxes_yxyx: (M, 4) pixel ymin, xmin, ymax, xmax in the padded square input.
            box_image_index: (M,) int32 image of each box.

        Returns:
            (M, h, w, c) float32; Disj: (M, 256, 128, 3) integral values in [0, 255].
        """
        if self.disjoint:   # 8-bit crops of the image itself, as the baseline sees them
            crops = roi_align(images, boxes_yxyx, box_image_index, self.image_size,
                              self._roi_size)
            return tf.clip_by_value(tf.round(crops), 0.0, 255.0)
        shared = self.trunk(images, training=False)[self._shared_name]
        return roi_align(shared, boxes_yxyx, box_image_index, self.image_size, self._roi_size)

    def pool_shard(self, work: ShardWork, batch_size: int, data_dir: str | None = None,
                   manual_dir=None) -> Iterator[pooled_records.PooledBox]:
        """The `PooledBox`es of the labelled boxes of one shard's images, in image order."""
        for batch in _pooling_input(work, self.image_size, batch_size, data_dir,
                                    manual_dir, self.resize_mode).as_numpy_iterator():
            image_index, slot = np.nonzero(batch['person_id'] >= 0)
            if not len(image_index):
                continue
            features = self.pool(tf.constant(batch['image']),
                                 tf.constant(batch['boxes'][image_index, slot]),
                                 tf.constant(image_index.astype(np.int32))).numpy()
            for feature, i, k in zip(features, image_index, slot):
                yield pooled_records.PooledBox(
                    feature=feature, identity=int(batch['person_id'][i, k]),
                    dataset=work.dataset, image_name=batch['filename'][i].decode(),
                    box=batch['annotated_boxes'][i, k].astype(np.float64))


def _gib(num_bytes: float) -> str:
    return f'{num_bytes / 2**30:.2f} GiB'


def check_disk_space(output_dir: str, num_boxes: int, pooled_shape: Sequence[int], dtype: str
                     ) -> int:
    """Prints the space the records of `num_boxes` boxes need and refuses to start a pooling run
    that the disk of `output_dir` cannot hold (a full disk would stop it hours later).

    Returns:
        the bytes needed (`pooled_records.record_bytes` per box).

    Raises:
        OSError: the free space of `output_dir`'s file system is smaller than that.
    """
    needed = num_boxes * pooled_records.record_bytes(pooled_shape, dtype)
    existing = os.path.abspath(output_dir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    free = shutil.disk_usage(existing).free
    print(f'{num_boxes} boxes to pool need about {_gib(needed)} in {output_dir} '
          f'({_gib(free)} free)', flush=True)
    if needed > free:
        raise OSError(f'feature pooling into {output_dir} needs about {_gib(needed)} for '
                      f'{num_boxes} boxes of {tuple(pooled_shape)} {dtype}, but its disk has '
                      f'{_gib(free)} free: free space or use another --model_dir '
                      f'(float16 records are half the size of float32 ones)')
    return needed


def pool_features(trunk: tf.keras.Model | None, variant: str, image_size: int, output_dir: str,
                  datasets: Sequence[str], source_checkpoint: str, split: str = 'train',
                  dtype: str = 'float16', images_per_shard: int = 500, batch_size: int = 8,
                  data_dir: str | None = None, manual_dir=None, resize_mode: str = 'letterbox',
                  num_workers: int = 1, worker_index: int = 0
                  ) -> pooled_manifest.PooledManifest | None:
    """Runs (or resumes) a pooling run and returns its complete manifest.

    Several processes (or machines sharing the output directory) can pool one run together:
    worker `worker_index` of `num_workers` pools the shards whose index modulo `num_workers` is
    its own. Each shard is written atomically by the one worker that owns it, so the records
    are the same bytes as one process would write; whichever worker finds every shard written
    writes the manifest. Workers that finish earlier return None (rerunning any worker once
    all are done finalises the run).

    Args:
        trunk: the frozen stage-1 trunk of `variant` (None for 'Disj').
        variant: 'J2', 'J3', 'J4' or 'Disj' (ground-truth crops, stored as uint8).
        image_size: the detector's input side (pixels).
        output_dir: the pooled-feature directory.
        datasets: TFDS names of the re-ID datasets.
        source_checkpoint: the stage-1 checkpoint the trunk was restored from (recorded
            absolute, so that stage 2 finds it from any working directory).
        split: the split pooled.
        dtype: storage dtype, 'float16' or 'float32' ('uint8' for Disj crops).
        images_per_shard: images per shard.
        batch_size: images per trunk pass.
        data_dir, manual_dir: see `ps_tf.data.datasets.get_builder`.
        resize_mode: the detector's 'letterbox' or 'stretch' (`resize_and_pad`).
        num_workers, worker_index: this process's share of the shards (see above).

    Raises:
        ValueError: `worker_index` is not in [0, num_workers).
    """
    if not 0 <= worker_index < num_workers:
        raise ValueError(f'worker_index must be in [0, num_workers={num_workers}), got '
                         f'{worker_index}')
    shards, identity_map = plan_shards(datasets, split, images_per_shard, data_dir, manual_dir)
    pooler = FeaturePooler(trunk, variant, image_size, resize_mode)
    writer = pooled_records.ShardedWriter(
        output_dir, num_shards=len(shards), identity_map=identity_map, variant=variant,
        pooled_shape=pooler.pooled_shape,
        source_checkpoint=pooled_records.local_absolute(source_checkpoint), dtype=dtype,
        metadata={'image_size': image_size, 'resize_mode': resize_mode, 'split': split,
                  'datasets': sorted(datasets), 'images_per_shard': images_per_shard})
    missing = writer.missing_shards()
    print(f'feature pooling ({variant}, {pooler.pooled_shape} {dtype}): {len(shards)} shards '
          f'of {sorted(datasets)}/{split}, {len(shards) - len(missing)} already complete, '
          f'output {output_dir}', flush=True)
    if num_workers > 1:
        missing = [i for i in missing if i % num_workers == worker_index]
        print(f'worker {worker_index} of {num_workers}: {len(missing)} of them are its own',
              flush=True)
    check_disk_space(output_dir, sum(shards[i].labelled_boxes for i in missing),
                     pooler.pooled_shape, dtype)
    for done, shard_index in enumerate(missing, 1):
        started = time.perf_counter()
        work = shards[shard_index]
        records = writer.write_shard(shard_index, pooler.pool_shard(work, batch_size, data_dir,
                                                                    manual_dir))
        seconds = time.perf_counter() - started
        logging.info('shard %d (%s %s): %d records in %.1f s', shard_index, work.dataset,
                     work.tfds_split, records, seconds)
        print(f'shard {shard_index + 1}/{len(shards)} ({done}/{len(missing)} this run): '
              f'{records} boxes of {work.end - work.start} images in {seconds:.1f} s', flush=True)
    others = writer.missing_shards()
    if others:   # other workers' shards
        print(f'worker {worker_index} of {num_workers} is done; {len(others)} shards are still '
              f'being pooled by the other workers: the last one to finish writes the manifest',
              flush=True)
        return None
    manifest = writer.finalize()
    print(f'pooled {manifest.num_records} boxes of '
          f'{int(np.count_nonzero(manifest.identity_counts))} identities', flush=True)
    return manifest
