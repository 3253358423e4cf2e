"""PRW training identities as contiguous class labels.

The builder keeps raw PRW ids in `objects/person_id`. Training ids are {1..478, 480..483, 932}
(483 ids; 932 is a real training id, 479 and 933 are test ids), so a classifier or lookup table over
them needs a contiguous remap. SeqNet feeds raw ids to a table of 482 rows, which puts 483 and 932
in its circular queue and never uses row 478 (docs/datasets.md#prw-boxes-and-identities); use this
remap instead.

    id_map = training_id_map(release.read_ids(root / 'ID_train.mat', ['ID_train']))
    labels = remap_ids(example_person_ids, id_map)
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from tfds_builders import schema


def training_id_map(train_ids: Sequence[int] | np.ndarray) -> dict[int, int]:
    """Raw training id -> contiguous label 0..N-1, in ascending raw-id order.

    Args:
        train_ids: the raw training ids (`ID_train.mat`), any order.

    Raises:
        ValueError: an id is not a positive integer, or is listed twice.
    """
    ids = np.asarray(train_ids).reshape(-1)
    if ids.size and (not np.all(ids == np.round(ids)) or np.any(ids < 1)):
        raise ValueError(f'training ids: expected positive integers, got {ids.tolist()[:10]}')
    ids = ids.astype(np.int64)
    if len(np.unique(ids)) != len(ids):
        raise ValueError('training ids: some ids are listed twice')
    return {int(raw): label for label, raw in enumerate(np.sort(ids))}


def remap_ids(person_ids: Sequence[int] | np.ndarray, id_map: Mapping[int, int]) -> np.ndarray:
    """Maps raw ids to labels; `schema.NO_IDENTITY` stays `schema.NO_IDENTITY`.

    Args:
        person_ids: (K,) raw ids as the builder writes them.
        id_map: from `training_id_map()`.

    Returns:
        (K,) int64 labels.

    Raises:
        ValueError: an id is neither `NO_IDENTITY` nor in `id_map` (e.g. a test id).
    """
    ids = np.asarray(person_ids, np.int64).reshape(-1)
    unknown = sorted({int(p) for p in ids if p != schema.NO_IDENTITY and int(p) not in id_map})
    if unknown:
        raise ValueError(f'person ids {unknown[:10]} are not training ids')
    return np.array([schema.NO_IDENTITY if p == schema.NO_IDENTITY else id_map[int(p)]
                     for p in ids], np.int64)
