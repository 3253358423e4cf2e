"""Vectorised operations on rows grouped into contiguous segments (CSR-style offsets).

The evaluation keeps per-image and per-query lists as flat arrays plus offsets; these helpers
replace the per-image Python loops of the reference code.
"""

from __future__ import annotations

import numpy as np


def expand_ranges(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenation of the ranges [starts[i], starts[i] + lengths[i]).

    Args:
        starts: (R,) int range starts.
        lengths: (R,) int non-negative range lengths.

    Returns:
        owner: (sum(lengths),) int64 range i of each element.
        values: (sum(lengths),) int64 the elements.
    """
    starts = np.asarray(starts, np.int64)
    lengths = np.asarray(lengths, np.int64)
    owner = np.repeat(np.arange(len(lengths)), lengths)
    first_of_owner = np.cumsum(lengths) - lengths
    values = starts[owner] + (np.arange(len(owner)) - first_of_owner[owner])
    return owner, values


def first_argmax(values: np.ndarray, segment: np.ndarray, num_segments: int) -> np.ndarray:
    """Position of the first maximum of each segment (np.argmax semantics: first index on ties).

    Args:
        values: (P,) values; rows of one segment must be contiguous and in the order in which ties
            are broken.
        segment: (P,) int segment of each row, non-decreasing.
        num_segments: number of segments.

    Returns:
        (num_segments,) int64 row of each segment's first maximum, -1 for empty segments.
    """
    result = np.full(num_segments, -1, np.int64)
    if not len(values):
        return result
    starts = np.flatnonzero(np.r_[True, segment[1:] != segment[:-1]])
    maxima = np.maximum.reduceat(values, starts)
    lengths = np.diff(np.r_[starts, len(values)])
    is_max = values == np.repeat(maxima, lengths)
    candidates = np.where(is_max, np.arange(len(values)), len(values))
    result[segment[starts]] = np.minimum.reduceat(candidates, starts)
    return result
