"""PRW-style search: a query ranks the whole gallery split but its own frame
(docs/evaluation.md#prw-search).

For a query (frame Q, identity p, camera c):
- ground truth: every gallery frame X != Q in which p appears, with the *first* box of p in X
  (the reference's `gt.ravel()[:4]`, for the rare frames annotated with p twice);
- standard gallery (`multi_view=False`, the headline protocol): every frame except Q;
- multi-view gallery (`multi_view=True`, COAT's "multi-view gallery"): every frame except Q and
  except *all* frames of camera c, negatives included;
- `count_gt` = number of ground-truth frames inside that gallery (frames, not boxes).
Ground-truth boxes follow the protocol's box convention (`seqnet_prw` for PRW).
"""

from __future__ import annotations

import numpy as np

from ps_tf.evaluation import protocol as protocol_lib
from ps_tf.evaluation import search
from ps_tf.evaluation import segments


def search_problem(protocol: protocol_lib.Protocol, multi_view: bool = False
                   ) -> search.SearchProblem:
    """Builds the `SearchProblem` of the PRW protocol.

    Args:
        protocol: the dataset's protocol (gallery lists, if any, are not used).
        multi_view: drop every frame of the query's camera from its gallery (cross-camera search).

    Returns:
        The `SearchProblem`.
    """
    gallery, queries = protocol.gallery, protocol.queries
    num_queries, num_images = len(queries), len(gallery.names)
    query_image = protocol.query_image_index
    weight = np.ones((num_queries, num_images), np.uint8)
    in_gallery = np.flatnonzero(query_image >= 0)
    weight[in_gallery, query_image[in_gallery]] = 0
    if multi_view:
        weight[gallery.cameras[None, :] == queries.cameras[:, None]] = 0

    # Occurrences of each query identity: (query, box) pairs, boxes in annotation order.
    labelled = np.flatnonzero(~gallery.ignore & (gallery.person_ids != protocol_lib.NO_IDENTITY))
    labelled = labelled[np.argsort(gallery.person_ids[labelled], kind='stable')]
    sorted_ids = gallery.person_ids[labelled]
    first = np.searchsorted(sorted_ids, queries.person_ids, side='left')
    last = np.searchsorted(sorted_ids, queries.person_ids, side='right')
    pair_query, position = segments.expand_ranges(first, last - first)
    pair_box = labelled[position]
    pair_image = gallery.box_image[pair_box]
    # The first box of the identity in each frame, and never the query's own frame.
    order = np.lexsort((pair_box, pair_image, pair_query))
    pair_query, pair_image, pair_box = pair_query[order], pair_image[order], pair_box[order]
    first_in_frame = np.r_[True, (pair_query[1:] != pair_query[:-1]) |
                           (pair_image[1:] != pair_image[:-1])]
    keep = first_in_frame & (pair_image != query_image[pair_query])
    keep &= weight[pair_query, pair_image] > 0
    positive_query, positive_image = pair_query[keep], pair_image[keep]
    positive_box = protocol_lib.gt_boxes_int32(gallery.boxes[pair_box[keep]],
                                               protocol.box_convention)
    positive_key = positive_query * num_images + positive_image   # sorted

    def reference_order(query: int) -> tuple[np.ndarray, np.ndarray]:
        images = np.flatnonzero(weight[query])
        keys = query * num_images + images
        found = np.minimum(np.searchsorted(positive_key, keys), max(0, len(positive_key) - 1))
        hit = positive_key[found] == keys if len(positive_key) else np.zeros(len(keys), bool)
        return images, np.where(hit, found, -1)

    return search.SearchProblem(
        gallery_weight=weight,
        positive_query=positive_query,
        positive_image=positive_image,
        positive_box=positive_box,
        count_gt=np.bincount(positive_query, minlength=num_queries).astype(np.int64),
        reference_order=reference_order,
    )
