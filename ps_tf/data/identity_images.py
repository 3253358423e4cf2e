"""P identities x K images: batches of full training images for the joint fine-tuning.

The joint fine-tuning (`ps_tf.training.joint_finetune`) trains detection and re-ID on the same
images, so its batches must serve both losses: full images with their anchor targets (detection),
and enough people of the same identities for the batch-hard triplet loss to find positives. A
batch is formed as follows:

1. P identities are drawn, and for each of them K training images that show it
   (`IdentityBalancedSampler`, the stage-2 sampler, run on the number of images each identity
   appears in instead of its number of pooled boxes): an epoch uses every identity seen in at
   least 2 images exactly once, an identity in fewer than K images contributes all of them plus
   repeats, identities in a single image are never drawn (they still appear in other people's
   images). Batch b is a function of (seed, b) alone, so a resumed run continues the sequence at
   its step.
2. The P x K images (identity-major: K consecutive images per drawn identity) are read and
   parsed. Every labelled box in them comes with its global identity label, not only the drawn
   identity's: the other people of the image are further positives or negatives. Boxes without
   an identity (person_id -1) and ignore regions get label -1: the detection targets use them as
   stage 1 does, the triplet loss skips them.

An image may occur twice in a batch (two drawn identities in one image, or an identity with fewer
than K images); each occurrence is flipped independently.

Parsing reuses the stage-1 training parser's parts (`flip_left_right`, `resize_and_pad`,
`scale_boxes`, and a `TrainParser`'s anchors and labeler), so images and anchor targets are
exactly what stage 1 trains on; what `TrainParser` does not return, the boxes in the model frame
and their identity labels, is kept beside them. Flips are stateless draws seeded by (seed, position
of the image in the whole sequence).

Random access. The sampler needs any image of the split at any time. TFDS' TFRecord shards are
sequential, so `index_images` scans each shard once for the byte offset of every record (the
framing gives each record's length, nothing is decoded), in the order TFDS reads the split
(`shuffle_files=False`); an image is then one seek + one read, and the serialized example is
deserialized with the builder's own features spec. Memory holds the index (a few integers per
image and one label per person), not the images.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Iterator, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from ps_tf.data import datasets as datasets_lib
from ps_tf.data.decoder import decode_example, partial_decoding
from ps_tf.data.detection_parser import DEFAULT_MAX_OBJECTS, TrainParser
from ps_tf.data.identity_sampler import IdentityBalancedSampler
from ps_tf.data.pooled.index import HEADER_BYTES, framed_size
from ps_tf.data.pooled.manifest import NO_IDENTITY, IdentityMap
from ps_tf.ops.anchors import AnchorConfig
from ps_tf.ops.geometry import flip_left_right, resize_and_pad, scale_boxes


@dataclasses.dataclass(frozen=True)
class ImageIndex:
    """Where every image of a split is, and the identity label of every person in it.

    Attributes:
        datasets: the TFDS names indexed, sorted.
        split: the split indexed.
        paths: the TFRecord files.
        file: int32 (N,), the file (position in `paths`) of each image.
        offset: int64 (N,), byte offset of each image's record framing in its file.
        length: int64 (N,), length of each serialized example.
        filenames: the images' `image/filename`s, (N,).
        object_labels: per image, int64 (objects,) global identity labels in the example's object
            order, -1 for unlabelled people and ignore regions.
        identity_map: the global labels' (dataset, person_id) pairs.
        features: the datasets' (shared) TFDS features spec, to deserialize the records.
        by_label, label_start: the images showing label l are
            `by_label[label_start[l]:label_start[l + 1]]` (image ids, ascending).
    """
    datasets: tuple[str, ...]
    split: str
    paths: tuple[str, ...]
    file: np.ndarray
    offset: np.ndarray
    length: np.ndarray
    filenames: tuple[str, ...]
    object_labels: tuple[np.ndarray, ...]
    identity_map: IdentityMap
    features: tfds.features.FeaturesDict
    by_label: np.ndarray
    label_start: np.ndarray

    def __len__(self) -> int:
        return len(self.offset)

    @property
    def images_per_identity(self) -> np.ndarray:
        """int64 (identities,), the number of images each label appears in."""
        return np.diff(self.label_start)

    def image_ids(self, labels: np.ndarray, sample_indices: np.ndarray) -> np.ndarray:
        """The `sample_indices`-th image of each identity of `labels` (the sampler's output)."""
        labels = np.asarray(labels, np.int64)
        return self.by_label[self.label_start[labels] + np.asarray(sample_indices, np.int64)]

    def read(self, image_id: int) -> bytes:
        """The serialized example of one image (one seek + one read)."""
        path, offset, length = (self.paths[self.file[image_id]], int(self.offset[image_id]),
                                int(self.length[image_id]))
        with tf.io.gfile.GFile(path, 'rb') as f:
            f.seek(offset)
            header = f.read(HEADER_BYTES)
            data = f.read(length)
        if len(data) != length or struct.unpack('<Q', header[:8])[0] != length:
            raise ValueError(f'{path}: no record of {length} bytes at offset {offset}; the file '
                             f'changed since it was indexed')
        return data


def record_offsets(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, lengths) int64 of every record of a TFRecord file, from the framing alone."""
    offsets, lengths = [], []
    size = tf.io.gfile.stat(path).length
    with tf.io.gfile.GFile(path, 'rb') as f:
        position = 0
        while position < size:
            f.seek(position)
            header = f.read(HEADER_BYTES)
            if len(header) != HEADER_BYTES:
                raise ValueError(f'{path}: truncated record header at byte {position}')
            length = struct.unpack('<Q', header[:8])[0]
            offsets.append(position)
            lengths.append(length)
            position += framed_size(length)
    if position != size:
        raise ValueError(f'{path}: the last record runs past the end of the file')
    return np.asarray(offsets, np.int64), np.asarray(lengths, np.int64)


def _read_objects(builder: tfds.core.DatasetBuilder, split: str):
    """Filenames, person ids and ignore flags of every image, in TFDS' unshuffled order."""
    decoders = tfds.decode.PartialDecoding({'image/filename': True,
                                            'objects': {'person_id': True, 'ignore': True}})
    for example in builder.as_dataset(split=split, shuffle_files=False,
                                      decoders=decoders).as_numpy_iterator():
        yield (example['image/filename'].decode(),
               np.asarray(example['objects']['person_id'], np.int64).reshape(-1),
               np.asarray(example['objects']['ignore'], bool).reshape(-1))


def index_images(datasets: Sequence[str], split: str = 'train', data_dir: str | None = None,
                 manual_dir=None) -> ImageIndex:
    """Indexes the images of `split` of `datasets` (see the module docstring).

    Raises:
        ValueError: a dataset is not stored as TFRecord files, the datasets do not share one
            features spec, the record count differs from TFDS', or no identity is labelled.
    """
    names = sorted(set(datasets))
    builders = [datasets_lib.get_builder(name, data_dir, manual_dir) for name in names]
    spec = repr(builders[0].info.features.get_serialized_info())
    paths, files, offsets, lengths, filenames, objects = [], [], [], [], [], []
    for name, builder in zip(names, builders):
        if builder.info.file_format != tfds.core.FileFormat.TFRECORD:
            raise ValueError(f'{name} is stored as {builder.info.file_format}, not TFRecord')
        if repr(builder.info.features.get_serialized_info()) != spec:
            raise ValueError(f'{name} does not share the features spec of {names[0]}')
        count = 0
        for instruction in builder.info.splits[split].file_instructions:
            file_offsets, file_lengths = record_offsets(instruction.filename)
            end = len(file_offsets) if instruction.take < 0 else instruction.skip + \
                instruction.take
            paths.append(instruction.filename)
            files.append(np.full(end - instruction.skip, len(paths) - 1, np.int32))
            offsets.append(file_offsets[instruction.skip:end])
            lengths.append(file_lengths[instruction.skip:end])
            count += end - instruction.skip
        read = [(filename, ids, np.where(ignore, NO_IDENTITY, ids), name)
                for filename, ids, ignore in _read_objects(builder, split)]
        if len(read) != count:
            raise ValueError(f'{name}[{split}]: {count} records in its files, {len(read)} '
                             f'examples read by TFDS')
        filenames += [r[0] for r in read]
        objects += [(r[2], r[3]) for r in read]
    identity_map = IdentityMap.from_person_ids(
        {name: np.concatenate([ids for ids, dataset in objects if dataset == name] or
                              [np.zeros(0, np.int64)]) for name in names})
    if not len(identity_map):
        raise ValueError(f'the {split} split of {names} holds no labelled person')
    object_labels = tuple(np.asarray([identity_map.label(dataset, i) if i >= 0 else NO_IDENTITY
                                      for i in ids], np.int64) for ids, dataset in objects)
    pairs = sorted({(int(label), image) for image, labels in enumerate(object_labels)
                    for label in labels if label >= 0})
    labels_of_pairs = np.asarray([label for label, _ in pairs], np.int64)
    counts = np.bincount(labels_of_pairs, minlength=len(identity_map))
    return ImageIndex(
        datasets=tuple(names), split=split, paths=tuple(paths), file=np.concatenate(files),
        offset=np.concatenate(offsets), length=np.concatenate(lengths),
        filenames=tuple(filenames), object_labels=object_labels, identity_map=identity_map,
        features=builders[0].info.features,
        by_label=np.asarray([image for _, image in pairs], np.int64),
        label_start=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


class JointParser:
    """A decoded example and its identity labels -> model inputs for both losses.

    Returns `(image, targets, boxes, labels)`: `image` float32 (S, S, 3) and `targets` as
    `TrainParser`'s; `boxes` float32 (max_objects, 4) pixel ymin, xmin, ymax, xmax in the padded
    square (zeros past the image's objects), `labels` int32 (max_objects,) identity labels, -1 for
    unlabelled people, ignore regions, zero-area boxes and padding.
    """

    def __init__(self, image_size: int, anchor_config: AnchorConfig = AnchorConfig(),
                 flip_prob: float = 0.5, max_objects: int = DEFAULT_MAX_OBJECTS,
                 resize_mode: str = 'letterbox'):
        self.train_parser = TrainParser(image_size, anchor_config=anchor_config,
                                        flip_prob=flip_prob, resize_mode=resize_mode)
        self.image_size = image_size
        self.max_objects = max_objects

    def __call__(self, decoded, labels: tf.Tensor, seed: tf.Tensor):
        parser = self.train_parser
        image = decoded['image']
        boxes = tf.reshape(tf.cast(decoded['boxes'], tf.float32), [-1, 4])
        ignore = tf.reshape(tf.cast(decoded['ignore'], tf.bool), [-1])
        labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
        count = tf.shape(boxes)[0]
        check = tf.debugging.Assert(
            tf.logical_and(tf.equal(tf.shape(labels)[0], count), count <= self.max_objects),
            ['JointParser: an image has more objects than max_objects, or its labels do not '
             'match its objects:', decoded['filename'], count])
        with tf.control_dependencies([check]):
            draw = tf.random.stateless_uniform([], seed=tf.cast(seed, tf.int64))
        image, boxes = tf.cond(draw < parser.flip_prob, lambda: flip_left_right(image, boxes),
                               lambda: (image, boxes))
        image, image_info = resize_and_pad(image, self.image_size, parser.resize_mode)
        boxes = scale_boxes(boxes, image_info)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        targets = parser.labeler(parser.anchors, tf.boolean_mask(boxes, keep),
                                 tf.boolean_mask(ignore, keep))
        n = parser.num_anchors
        targets = {
            'class_targets': tf.ensure_shape(targets['class_targets'], [n]),
            'class_weights': tf.ensure_shape(targets['class_weights'], [n]),
            'box_targets': tf.ensure_shape(targets['box_targets'], [n, 4]),
            'box_weights': tf.ensure_shape(targets['box_weights'], [n]),
            'num_positives': tf.ensure_shape(targets['num_positives'], []),
        }
        labels = tf.where(keep, labels, NO_IDENTITY)
        padding = self.max_objects - count
        boxes = tf.ensure_shape(tf.pad(boxes, [[0, padding], [0, 0]]), [self.max_objects, 4])
        labels = tf.ensure_shape(tf.pad(labels, [[0, padding]], constant_values=NO_IDENTITY),
                                 [self.max_objects])
        return image, targets, boxes, labels


def identity_image_dataset(index: ImageIndex, identities_per_batch: int,
                           images_per_identity: int, image_size: int,
                           anchor_config: AnchorConfig = AnchorConfig(), seed: int = 0,
                           start_batch: int = 0, flip_prob: float = 0.5,
                           max_objects: int = DEFAULT_MAX_OBJECTS,
                           resize_mode: str = 'letterbox') -> tf.data.Dataset:
    """Endless P x K image batches (module docstring), from global batch `start_batch` on,
    resized as stage 1 trained (`resize_mode`: 'letterbox' or 'stretch').

    Returns:
        A dataset of `(images, targets, boxes, labels)`: float32 (B, S, S, 3), the anchor targets
        of `TrainParser` batched, float32 (B, max_objects, 4) and int32 (B, max_objects) with
        B = P x K (see `JointParser`).
    """
    sampler = IdentityBalancedSampler(index.images_per_identity, identities_per_batch,
                                      images_per_identity, seed)
    batch_size = sampler.batch_size
    parser = JointParser(image_size, anchor_config, flip_prob, max_objects, resize_mode)
    partial = partial_decoding()
    features = partial.extract_features(index.features)

    def image_ids() -> Iterator[tuple[int, int]]:
        position = start_batch * batch_size
        for labels, sample_indices in sampler.batches(start_batch):
            for image_id in index.image_ids(labels, sample_indices):
                yield int(image_id), position
                position += 1

    def load(image_id, position):
        serialized, labels = tf.numpy_function(
            lambda i: (index.read(int(i)), index.object_labels[int(i)]), [image_id],
            (tf.string, tf.int64), stateful=False)
        decoded = decode_example(features.deserialize_example(
            tf.ensure_shape(serialized, []), decoders=partial.decoders))
        return parser(decoded, labels, tf.stack([tf.cast(seed, tf.int64), position]))

    dataset = tf.data.Dataset.from_generator(image_ids, output_signature=(
        tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.int64)))
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(1)
