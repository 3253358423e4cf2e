"""Detection datasets: dataset specs, building TFDS datasets, the weighted training mix and the
evaluation dataset.

Training data flow (one `tf.data` graph, no Python per example):

    per dataset: TFDS records (files shuffled, JPEG not yet decoded, `query` features skipped)
        -> shuffle -> repeat
    -> sample_from_datasets(weights)          (every dataset repeats, so none runs dry)
    -> decode_example + TrainParser           (parallel map: JPEG decode, flip, resize+pad, anchors)
    -> batch(drop_remainder) -> prefetch

Seeds: with `seed` set, file order, shuffles, the mixture draw and every flip are reproducible
(flips use stateless draws from a seeded per-example stream, so parallelism does not change them);
without it the pipeline is allowed to be non-deterministic, which is faster.

Datasets are built on demand: the generated ones (`synthetic_person_search/...`) are prepared in
`data_dir` when missing; the manual-download ones (CUHK-SYSU, PRW, ...) are prepared when their
release folder is given as `manual_dir`, and otherwise fail with the `tfds build` command to run.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from ps_tf.data.decoder import decode_example, partial_decoding
from ps_tf.data.detection_parser import DEFAULT_MAX_OBJECTS, EvalParser, TrainParser
from ps_tf.ops.anchor_labeler import AnchorLabeler
from ps_tf.ops.anchors import AnchorConfig

DEFAULT_SHUFFLE_BUFFER = 512

# A release folder per dataset name ('cuhk_sysu'), or one folder for a single dataset.
ManualDir = str | Mapping[str, str] | None


class DatasetNotBuiltError(FileNotFoundError):
    """A manual-download dataset is not built in `data_dir` and no `manual_dir` was given."""


class DatasetWeight(NamedTuple):
    """One entry of a dataset spec.

    Attributes:
        name: TFDS name with optional config, e.g. 'cuhk_sysu' or
            'synthetic_person_search/detection_only'.
        weight: relative sampling weight, >= 0.
    """
    name: str
    weight: float


def parse_dataset_spec(spec: str) -> list[DatasetWeight]:
    """Parses `name[:weight],name[:weight],...` (the `--detection_datasets` flag).

    A missing weight means 1. Example:
    'cuhk_sysu:1,prw:1,synthetic_person_search/detection_only:0.5'.

    Returns:
        One `DatasetWeight` (a (name, weight) named tuple) per entry, in spec order.

    Raises:
        ValueError: the spec is empty, an entry has no name, a weight is not a finite number or is
            negative, a dataset appears twice, or all weights are zero.
    """
    if not spec or not spec.strip():
        raise ValueError('empty dataset spec: expected "name[:weight],...", e.g. '
                         '"cuhk_sysu:1,prw:1"')
    entries: list[DatasetWeight] = []
    for item in spec.split(','):
        item = item.strip()
        name, separator, weight_text = item.partition(':')
        name = name.strip()
        if not name:
            raise ValueError(f'dataset spec {spec!r}: entry {item!r} has no dataset name')
        weight = 1.0
        if separator:
            try:
                weight = float(weight_text)
            except ValueError:
                raise ValueError(f'dataset spec {spec!r}: weight {weight_text.strip()!r} of '
                                 f'{name!r} is not a number') from None
            if weight != weight or weight in (float('inf'), float('-inf')):
                raise ValueError(f'dataset spec {spec!r}: weight of {name!r} must be finite, '
                                 f'got {weight_text.strip()!r}')
            if weight < 0:
                raise ValueError(f'dataset spec {spec!r}: weight of {name!r} must be >= 0, got '
                                 f'{weight}')
        if any(entry.name == name for entry in entries):
            raise ValueError(f'dataset spec {spec!r}: {name!r} appears twice')
        entries.append(DatasetWeight(name, weight))
    if sum(entry.weight for entry in entries) <= 0:
        raise ValueError(f'dataset spec {spec!r}: all weights are zero')
    return entries


def parse_dataset_list(spec: str) -> list[str]:
    """'cuhk_sysu,prw' (the re-ID datasets) -> ['cuhk_sysu', 'prw'] (sorted, unique).

    Raises:
        ValueError: empty list.
    """
    names = sorted({name.strip() for name in spec.split(',') if name.strip()})
    if not names:
        raise ValueError(f'no re-ID dataset in {spec!r}')
    return names


def parse_split_spec(spec: str) -> tuple[str, str]:
    """'name[/config]:split' (a validation set) -> (name, split). The split may use TFDS
    slicing, colons included ('cuhk_sysu:gallery[:100]'); dataset names have none.

    Raises:
        ValueError: no name or no split.
    """
    name, _, split = spec.partition(':')
    if not name.strip() or not split.strip():
        raise ValueError(f'expected "name[/config]:split", got {spec!r}')
    return name.strip(), split.strip()


def parse_manual_dir(value: str | None) -> str | dict[str, str] | None:
    """The `--manual_dir` flag: one release folder (a path, or None: as is) or several,
    'name=path,name=path' -> {name: path}.

    Raises:
        ValueError: an entry of the list form without 'name='.
    """
    if not value or '=' not in value:
        return value
    folders = {}
    for item in (item.strip() for item in value.split(',') if item.strip()):
        name, separator, path = item.partition('=')
        if not separator or not name.strip() or not path.strip():
            raise ValueError(f'--manual_dir {value!r}: entry {item!r} is not name=path')
        folders[name.strip()] = path.strip()
    return folders


# ----------------------------------------------------------------------------- building


def _manual_dir_for(name: str, manual_dir: ManualDir) -> str | None:
    if manual_dir is None or isinstance(manual_dir, str):
        return manual_dir
    base = name.split('/')[0]
    return manual_dir.get(name, manual_dir.get(base))


def get_builder(name: str, data_dir: str | None = None,
                manual_dir: ManualDir = None) -> tfds.core.DatasetBuilder:
    """The TFDS builder of `name`, prepared in `data_dir` if it was not.

    Generated datasets (no manual download, e.g. `synthetic_person_search/tiny`) are prepared on
    the spot. Manual-download datasets are prepared from their release folder when `manual_dir`
    names one.

    Args:
        name: TFDS name with optional config.
        data_dir: TFDS data directory (None: TFDS' default, ~/tensorflow_datasets).
        manual_dir: the release folder, or a mapping from dataset name (with or without config)
            to release folder.

    Raises:
        DatasetNotBuiltError: a manual-download dataset is not built and has no `manual_dir`.
    """
    import tfds_builders  # noqa: F401  (registers every ps_tf builder with TFDS)

    builder = tfds.builder(name, data_dir=data_dir)
    if builder.is_prepared():
        return builder
    release_dir = _manual_dir_for(name, manual_dir)
    if builder.MANUAL_DOWNLOAD_INSTRUCTIONS and release_dir is None:
        base = name.split('/')[0]
        data_dir_flag = f' --data_dir={data_dir}' if data_dir else ''
        raise DatasetNotBuiltError(
            f'dataset {name!r} is not built in {builder.data_dir!r}, and it needs a manual '
            f'download. Build it with\n  tfds build tfds_builders/{base} '
            f'--manual_dir=<release folder>{data_dir_flag}\nor pass manual_dir. Expected '
            f'release folder:\n{builder.MANUAL_DOWNLOAD_INSTRUCTIONS}')
    logging.info('Preparing %s in %s%s', name, builder.data_dir,
                 f' from {release_dir}' if release_dir else '')
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=release_dir, try_download_gcs=False))
    return builder


def load_split(name: str, split: str, data_dir: str | None = None, manual_dir: ManualDir = None,
               shuffle_files: bool = False, seed: int | None = None,
               try_autocache: bool = False) -> tf.data.Dataset:
    """One split as undecoded-JPEG TFDS examples (read with `decoder.partial_decoding()`).

    Args:
        name: TFDS name with optional config.
        split: split name (TFDS slicing such as 'train[:10]' works).
        data_dir, manual_dir: see `get_builder`.
        shuffle_files: shuffle the order of the record files (training).
        seed: seed of the file shuffle.
        try_autocache: let TFDS cache a small dataset in memory; worth it only when the split is
            read repeatedly and in full (training), not for one (possibly partial) pass.

    Raises:
        ValueError: the dataset has no such split.
        DatasetNotBuiltError: see `get_builder`.
    """
    builder = get_builder(name, data_dir, manual_dir)
    base_split = split.split('[')[0]
    if base_split not in builder.info.splits:
        raise ValueError(f'{name} has no split {base_split!r}; it has '
                         f'{sorted(builder.info.splits)}')
    read_config = tfds.ReadConfig(shuffle_seed=seed, try_autocache=try_autocache)
    return builder.as_dataset(split=split, shuffle_files=shuffle_files, decoders=partial_decoding(),
                              read_config=read_config)


MIXING_MODES = ('weights', 'size')


def split_size(name: str, split: str = 'train', data_dir: str | None = None,
               manual_dir: ManualDir = None) -> int:
    """The number of examples in a dataset's split, from its builder's metadata (the dataset is
    prepared first if needed, `get_builder`)."""
    return get_builder(name, data_dir, manual_dir).info.splits[split].num_examples


def size_weighted(entries: Sequence[DatasetWeight], split: str = 'train',
                  data_dir: str | None = None,
                  manual_dir: ManualDir = None) -> list[DatasetWeight]:
    """The entries with each weight multiplied by its dataset's number of `split` examples.

    With equal spec weights every image is then drawn equally often, as if the datasets were
    concatenated (CUHK-SYSU is a third of the paper's four detection datasets' images, not a
    quarter as with equal weights). The sizes come from the builders' metadata (each dataset is
    prepared first if needed).

    Raises:
        ValueError: a dataset whose split is empty.
    """
    weighted = []
    for entry in entries:
        size = split_size(entry.name, split, data_dir, manual_dir)
        if size <= 0:
            raise ValueError(f'dataset {entry.name!r} has no {split!r} examples to weight by')
        weighted.append(DatasetWeight(entry.name, entry.weight * size))
    return weighted


def mix_datasets(datasets: Sequence[tf.data.Dataset], weights: Sequence[float],
                 seed: int | None = None) -> tf.data.Dataset:
    """Samples from several infinite (repeated) datasets with probabilities ∝ `weights`.

    Args:
        datasets: datasets with the same element structure, each repeated.
        weights: one weight >= 0 per dataset, not all zero.
        seed: seed of the draw.

    Raises:
        ValueError: lengths differ, a weight is negative, or all are zero.
    """
    if len(datasets) != len(weights) or not datasets:
        raise ValueError(f'need one weight per dataset, got {len(datasets)} datasets and '
                         f'{len(weights)} weights')
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f'weights must be >= 0 and not all zero, got {list(weights)}')
    if len(datasets) == 1:
        return datasets[0]
    total = float(sum(weights))
    return tf.data.Dataset.sample_from_datasets(
        list(datasets), weights=[w / total for w in weights], seed=seed,
        stop_on_empty_dataset=False)


def detection_train_dataset(spec: str | Sequence[DatasetWeight], image_size: int,
                            batch_size: int, data_dir: str | None = None, split: str = 'train',
                            seed: int | None = None, manual_dir: ManualDir = None,
                            anchor_config: AnchorConfig = AnchorConfig(),
                            labeler: AnchorLabeler = AnchorLabeler(), flip_prob: float = 0.5,
                            shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
                            resize_mode: str = 'letterbox') -> tf.data.Dataset:
    """The stage-1 training input: a weighted mix of datasets, parsed, batched, infinite.

    Args:
        spec: dataset spec string (`parse_dataset_spec`) or its parsed entries.
        image_size: side S of the square model input, pixels.
        batch_size: images per batch (the last partial batch never occurs: the data repeats).
        data_dir, manual_dir: see `get_builder`.
        split: the split read from every dataset.
        seed: makes the pipeline reproducible (see the module docstring); None: not.
        anchor_config, labeler, flip_prob: see `TrainParser`.
        shuffle_buffer: examples (encoded) in each dataset's shuffle buffer.
        resize_mode: 'letterbox' or 'stretch' (`ps_tf.ops.geometry.resize_and_pad`).

    Returns:
        Repeated dataset of `(images, targets)`: images float32 (B, S, S, 3) pixel values 0-255;
        targets `class_targets` (B, N), `class_weights` (B, N), `box_targets` (B, N, 4),
        `box_weights` (B, N), `num_positives` (B,), N anchors per image.
    """
    entries = parse_dataset_spec(spec) if isinstance(spec, str) else list(spec)
    if batch_size <= 0:
        raise ValueError(f'batch_size must be positive, got {batch_size}')
    if shuffle_buffer <= 0:
        raise ValueError(f'shuffle_buffer must be positive, got {shuffle_buffer}')
    parser = TrainParser(image_size, anchor_config=anchor_config, labeler=labeler,
                         flip_prob=flip_prob, resize_mode=resize_mode)

    sources = []
    for index, entry in enumerate(entries):
        entry_seed = None if seed is None else seed + 1000 * index
        dataset = load_split(entry.name, split, data_dir, manual_dir, shuffle_files=True,
                             seed=entry_seed, try_autocache=True)
        sources.append(dataset.shuffle(shuffle_buffer, seed=entry_seed).repeat())
        logging.info('Detection training data: %s[%s], weight %g', entry.name, split,
                     entry.weight)
    dataset = mix_datasets(sources, [entry.weight for entry in entries], seed=seed)

    if seed is None:
        dataset = dataset.map(lambda example: parser(decode_example(example)),
                              num_parallel_calls=tf.data.AUTOTUNE)
    else:
        # A seeded stream of per-example (2,) seeds for the stateless flip draw.
        flip_seeds = tf.data.Dataset.random(seed=seed).batch(2)
        dataset = tf.data.Dataset.zip((dataset, flip_seeds)).map(
            lambda example, flip_seed: parser(decode_example(example), seed=flip_seed),
            num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = seed is not None
    return dataset.with_options(options)


def detection_eval_dataset(name: str, split: str, image_size: int, batch_size: int,
                           data_dir: str | None = None,
                           max_objects: int = DEFAULT_MAX_OBJECTS,
                           manual_dir: ManualDir = None,
                           resize_mode: str = 'letterbox') -> tf.data.Dataset:
    """One split for evaluation: every image once, in a deterministic order, no augmentation.

    TFDS stores examples shuffled; sort outputs by `labels['protocol_index']` (or key them by
    `filename`) where protocol order matters.

    Args:
        name: TFDS name with optional config.
        split: split name, e.g. 'gallery'.
        image_size: side S of the square model input, pixels.
        batch_size: images per batch; the last batch may be smaller.
        data_dir, manual_dir: see `get_builder`.
        max_objects: ground-truth entries per image after padding (see `EvalParser`).
        resize_mode: 'letterbox' or 'stretch' (`ps_tf.ops.geometry.resize_and_pad`), as the
            detector was trained.

    Returns:
        Dataset of `(images, labels)`: images float32 (B, S, S, 3); labels as `EvalParser`'s with
        a leading batch dimension (`gt_boxes` (B, max_objects, 4) pixel x1, y1, x2, y2 original).
    """
    if batch_size <= 0:
        raise ValueError(f'batch_size must be positive, got {batch_size}')
    parser = EvalParser(image_size, max_objects=max_objects, resize_mode=resize_mode)
    dataset = load_split(name, split, data_dir, manual_dir, shuffle_files=False)
    dataset = dataset.map(lambda example: parser(decode_example(example)),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
