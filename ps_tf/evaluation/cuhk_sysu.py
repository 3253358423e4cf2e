"""CUHK-SYSU-style search: each query ranks the gallery list of its protocol
(docs/evaluation.md#cuhk-sysu-search).

For gallery size N (CUHK-SYSU: 50, 100, 500, 1000, 2000, 4000; `TestG{N}.mat`), query q ranks
the detections of the images its list names, in list order:
- `count_gt` counts the list's *positive entries* (duplicates included), whether or not the image
  has a kept detection, so undetected people lower recall;
- `dedupe_gallery=True` (SeqNet/COAT, the default): an image listed twice is ranked once, with the
  first entry's ground truth; `False` (OIM/NAE/AlignPS/PSTR): every entry is ranked, so a
  duplicated image contributes its detections twice and can give two true positives;
- the query's own image is not removed: the protocol lists normally omit it, and where they do not
  (two CUHK-SYSU queries) the entry is kept as the reference keeps it.

`FULL_SET` (-1) is OIM/NAE's full-set protocol (SeqNet's branch is broken): rank the smallest list
(TestG50), then every other gallery image except the query's own, all labelled negative, with no
change to `count_gt`.
"""

from __future__ import annotations

import numpy as np

from ps_tf.evaluation import protocol as protocol_lib
from ps_tf.evaluation import search

FULL_SET = -1
CUHK_SYSU_GALLERY_SIZES = (50, 100, 500, 1000, 2000, 4000)


def search_problem(protocol: protocol_lib.Protocol, gallery_size: int,
                   dedupe_gallery: bool = True) -> search.SearchProblem:
    """Builds the `SearchProblem` of one gallery size.

    Args:
        protocol: a protocol whose queries carry gallery lists.
        gallery_size: one of `protocol.gallery_sizes`, or `FULL_SET`.
        dedupe_gallery: rank a duplicated image once (SeqNet, True) or once per entry (OIM).

    Returns:
        The `SearchProblem`; positives carry int32 boxes under the protocol's box convention.

    Raises:
        ValueError: the protocol has no lists, or not of this size.
    """
    if not protocol.gallery_sizes:
        raise ValueError(f'{protocol.dataset}: the queries carry no gallery lists, so the '
                         f'CUHK-SYSU protocol does not apply (use the PRW protocol)')
    full_set = gallery_size == FULL_SET
    list_size = min(protocol.gallery_sizes) if full_set else gallery_size
    if list_size not in protocol.queries.galleries:
        raise ValueError(f'{protocol.dataset}: no gallery lists of size {gallery_size}; the '
                         f'protocol defines {protocol.gallery_sizes} (and {FULL_SET} = full set)')
    lists = protocol.queries.galleries[list_size]
    num_queries, num_images = len(protocol.queries), len(protocol.gallery.names)
    entry_query, entry_image = lists.entry_query, lists.image_index
    is_positive = lists.is_positive

    keys = entry_query * num_images + entry_image
    multiplicity = np.zeros(num_queries * num_images, np.uint8)
    if 16 * len(keys) < len(multiplicity):       # sorting beats a bincount over Q x N bins
        unique_keys, counts = np.unique(keys, return_counts=True)
        multiplicity[unique_keys] = np.minimum(counts, 255)
    else:
        multiplicity[:] = np.minimum(np.bincount(keys, minlength=len(multiplicity)), 255)
    ranked = np.ones(len(keys), bool)
    if dedupe_gallery:
        repeated = np.flatnonzero(multiplicity[keys] > 1)   # rare: rank only the first entry
        _, first = np.unique(keys[repeated], return_index=True)
        ranked[repeated] = False
        ranked[repeated[first]] = True
        np.minimum(multiplicity, 1, out=multiplicity)
    weight = multiplicity.reshape(num_queries, num_images)
    positive_entries = np.flatnonzero(ranked & is_positive)
    positive_of_entry = np.full(len(keys), -1, np.int64)
    positive_of_entry[positive_entries] = np.arange(len(positive_entries))

    extra = np.zeros((num_queries, 0), bool)
    if full_set:
        extra = weight == 0
        query_image = protocol.query_image_index
        in_gallery = np.flatnonzero(query_image >= 0)
        extra[in_gallery, query_image[in_gallery]] = False
        weight[extra] = 1

    def reference_order(query: int) -> tuple[np.ndarray, np.ndarray]:
        start, end = lists.offsets[query], lists.offsets[query + 1]
        entries = np.arange(start, end)[ranked[start:end]]
        images, positives = entry_image[entries], positive_of_entry[entries]
        if full_set:
            others = np.flatnonzero(extra[query])
            images = np.concatenate([images, others])
            positives = np.concatenate([positives, np.full(len(others), -1, np.int64)])
        return images, positives

    return search.SearchProblem(
        gallery_weight=weight,
        positive_query=entry_query[positive_entries],
        positive_image=entry_image[positive_entries],
        positive_box=protocol_lib.gt_boxes_int32(lists.positive_box[positive_entries],
                                                 protocol.box_convention),
        count_gt=np.bincount(entry_query, weights=is_positive,
                             minlength=num_queries).astype(np.int64),
        reference_order=reference_order,
    )
