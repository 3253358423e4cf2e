"""Speed of the vectorised search evaluation against a plain loop, on a CUHK-SYSU-sized problem.

A random problem the size of CUHK-SYSU's test set (2,900 queries, 6,978 gallery images, ~6 people
and ~20 detections per image, 256-d embeddings; 1-13 occurrences per query identity) is scored at
gallery sizes 100 and 4000 by ps_tf and by a per-query, per-image loop written here straight from
docs/evaluation.md#cuhk-sysu-search (SeqNet semantics, scikit-learn AP). The benchmark checks
that both agree (per-query AP to 1e-6, identical top-k) and prints both times and their ratio.
The detection metric, the other part of a full evaluation, is timed once.

    python benchmarks/eval_speed.py                     # full comparison (the loop takes minutes)
    python benchmarks/eval_speed.py --loop_queries=300  # loop on the first 300 queries only
"""

from __future__ import annotations

import time

import numpy as np
from absl import app
from absl import flags
from sklearn.metrics import average_precision_score

from ps_tf.evaluation import cuhk_sysu
from ps_tf.evaluation import detection
from ps_tf.evaluation import protocol as protocol_lib
from ps_tf.evaluation import search

flags.DEFINE_list('gallery_sizes', ['100', '4000'], 'Gallery sizes to time.')
flags.DEFINE_integer('loop_queries', 0, 'Queries scored by the loop (0 = all); the loop time is '
                     'scaled up to all queries for the ratio.')
flags.DEFINE_integer('seed', 0, 'Random seed.')
FLAGS = flags.FLAGS

NUM_QUERIES, NUM_IMAGES, PEOPLE_PER_IMAGE, DETS_PER_IMAGE, DIM = 2900, 6978, 6, 20, 256
OCCURRENCES = np.asarray([1501, 804, 341, 135, 48, 28, 16, 9, 9, 2, 4, 1, 2])   # G100 positives


def make_problem(rng: np.random.Generator, gallery_sizes: list[int]):
    """A CUHK-SYSU-sized protocol and kept detections (boxes, embeddings) for it."""
    counts = rng.poisson(PEOPLE_PER_IMAGE - 1, NUM_IMAGES) + 1
    num_boxes = int(counts.sum())
    xy = rng.uniform(0, 600, (num_boxes, 2))
    wh = np.stack([rng.uniform(15, 120, num_boxes), rng.uniform(40, 300, num_boxes)], 1)
    boxes = np.round(np.concatenate([xy, xy + wh], 1))
    person_ids = np.full(num_boxes, protocol_lib.NO_IDENTITY, np.int64)
    box_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    # Query identity q occupies one box in 1 + k images (k drawn like CUHK-SYSU's G100 positives).
    positives = rng.choice(np.arange(1, 14), NUM_QUERIES, p=OCCURRENCES / OCCURRENCES.sum())
    query_image, entries = np.zeros(NUM_QUERIES, np.int64), []
    for q in range(NUM_QUERIES):
        images = rng.choice(NUM_IMAGES, positives[q] + 1, replace=False)
        for image in images:
            free = np.flatnonzero(person_ids[box_offsets[image]:box_offsets[image + 1]] < 0)
            if len(free):
                person_ids[box_offsets[image] + free[0]] = q
        query_image[q] = images[0]
        entries.append(images[1:])
    gallery = protocol_lib.GalleryAnnotations(
        names=np.asarray([f's{n}.jpg' for n in range(NUM_IMAGES)]),
        cameras=np.full(NUM_IMAGES, -1, np.int64), box_offsets=box_offsets, boxes=boxes,
        person_ids=person_ids, ignore=np.zeros(num_boxes, bool))
    box_of = {}
    for row in np.flatnonzero(person_ids >= 0):
        box_of.setdefault((int(person_ids[row]), int(np.searchsorted(box_offsets, row, 'right'))
                           - 1), boxes[row])
    listed = [np.asarray([i for i in entries[q] if (q, int(i)) in box_of], np.int64)
              for q in range(NUM_QUERIES)]
    galleries = {}
    for size in gallery_sizes:
        image_index, positive_box = [], []
        for q in range(NUM_QUERIES):
            negatives = rng.choice(NUM_IMAGES, size + 50, replace=False)
            negatives = negatives[~np.isin(negatives, np.r_[entries[q], query_image[q]])]
            negatives = negatives[:size - len(listed[q])]
            image_index.append(np.concatenate([listed[q], negatives]))
            positive_box.append(np.concatenate(
                [np.asarray([box_of[(q, int(i))] for i in listed[q]]).reshape(-1, 4),
                 np.full((len(negatives), 4), np.nan)]))
        lengths = [len(i) for i in image_index]
        galleries[size] = protocol_lib.GalleryLists(
            np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            np.concatenate(image_index).astype(np.int64), np.concatenate(positive_box))
    queries = protocol_lib.QueryAnnotations(
        image_names=gallery.names[query_image], cameras=np.full(NUM_QUERIES, -1, np.int64),
        boxes=np.zeros((NUM_QUERIES, 4)), person_ids=np.arange(NUM_QUERIES, dtype=np.int64),
        galleries=galleries)
    protocol = protocol_lib.Protocol('cuhk_sysu_sized_random', gallery, queries)

    # ~20 detections per image: most people found (jittered), the rest random boxes.
    det_image, det_boxes, det_identity = [], [], []
    for image in range(NUM_IMAGES):
        rows = np.arange(box_offsets[image], box_offsets[image + 1])
        found = rows[rng.random(len(rows)) < 0.9]
        extra = DETS_PER_IMAGE - len(found)
        xy = rng.uniform(0, 600, (extra, 2))
        random_boxes = np.concatenate([xy, xy + rng.uniform(20, 200, (extra, 2))], 1)
        det_boxes.append(np.concatenate([boxes[found] + rng.normal(0, 4, (len(found), 4)),
                                         random_boxes]))
        det_identity.append(np.concatenate([person_ids[found], np.full(extra, -1)]))
        det_image.append(np.full(DETS_PER_IMAGE, image))
    det_identity = np.concatenate(det_identity)
    codes = rng.normal(size=(NUM_QUERIES + 1, DIM))
    embeddings = 0.6 * codes[np.where(det_identity >= 0, det_identity, NUM_QUERIES)] + \
        rng.normal(size=(len(det_identity), DIM))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    query_embeddings = 0.6 * codes[:NUM_QUERIES] + rng.normal(size=(NUM_QUERIES, DIM))
    query_embeddings /= np.linalg.norm(query_embeddings, axis=1, keepdims=True)
    det_boxes = np.concatenate(det_boxes).astype(np.float32)
    det_boxes[:, 2:] = np.maximum(det_boxes[:, 2:], det_boxes[:, :2] + 1)
    det_scores = rng.uniform(0, 1, len(det_identity)).astype(np.float32)
    return (protocol, np.concatenate(det_image), det_boxes, det_scores,
            embeddings.astype(np.float32), query_embeddings.astype(np.float32))


def _iou(a, b):
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x2 - x1) * max(0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def per_image_detections(det_image, det_boxes, det_scores, det_embeddings, num_images):
    """The reference input format: per gallery image, (n, 5) x1, y1, x2, y2, score and (n, D)."""
    order = np.argsort(det_image, kind='stable')
    splits = np.cumsum(np.bincount(det_image, minlength=num_images))[:-1]
    dets = np.split(np.concatenate([det_boxes, det_scores[:, None]], 1)[order], splits)
    return dets, np.split(det_embeddings[order], splits)


def loop_search(protocol, gallery_dets, gallery_feats, query_embeddings, gallery_size,
                num_queries, det_thresh=0.5):
    """docs/evaluation.md#cuhk-sysu-search as written: per query, per gallery entry, SeqNet
    semantics."""
    names = protocol.gallery.names.tolist()
    kept = {}
    for name, det, feat in zip(names, gallery_dets, gallery_feats):
        rows = np.flatnonzero(det[:, 4] >= det_thresh)
        if len(rows):
            kept[name] = (det[rows, :4], feat[rows])
    lists = protocol.queries.galleries[gallery_size]
    is_positive = lists.is_positive
    gt_boxes = protocol_lib.gt_boxes_int32(np.nan_to_num(lists.positive_box), 'truncate')
    aps, accs = [], []
    for q in range(num_queries):
        feat_q = query_embeddings[q]
        count_gt = count_tp = 0
        y_true, y_score, name2sim, name2gt = [], [], {}, {}
        for e in range(lists.offsets[q], lists.offsets[q + 1]):
            name = names[lists.image_index[e]]
            gt = gt_boxes[e] if is_positive[e] else np.zeros(0, np.int32)
            count_gt += gt.size > 0
            if name not in kept or name in name2sim:
                continue
            name2sim[name] = kept[name][1] @ feat_q
            name2gt[name] = gt
        for name, sim in name2sim.items():
            gt, boxes = name2gt[name], kept[name][0]
            label = np.zeros(len(sim), np.int32)
            if gt.size:
                w, h = gt[2] - gt[0], gt[3] - gt[1]
                threshold = min(0.5, w * h / ((w + 10) * (h + 10)))
                order = np.argsort(sim)[::-1]
                sim, boxes = sim[order], boxes[order]
                for j, box in enumerate(boxes):
                    if _iou(box, gt) >= threshold:
                        label[j] = 1
                        count_tp += 1
                        break
            y_true.extend(label)
            y_score.extend(sim)
        y_true, y_score = np.asarray(y_true), np.asarray(y_score)
        aps.append(0.0 if count_tp == 0 else
                   average_precision_score(y_true, y_score) * count_tp / count_gt)
        ranked = y_true[np.argsort(y_score)[::-1]]
        accs.append([min(1, ranked[:k].sum()) for k in search.TOP_K])
    return np.asarray(aps), np.asarray(accs, np.float64)


def main(argv):
    del argv
    sizes = [int(s) for s in FLAGS.gallery_sizes]
    rng = np.random.default_rng(FLAGS.seed)
    started = time.perf_counter()
    protocol, det_image, det_boxes, det_scores, det_embeddings, query_embeddings = \
        make_problem(rng, sizes)
    print(f'problem: {NUM_QUERIES} queries, {NUM_IMAGES} gallery images, {len(det_image)} '
          f'detections, {DIM}-d embeddings (built in {time.perf_counter() - started:.1f} s)')
    started = time.perf_counter()
    det_metrics = detection.evaluate_detection(protocol.gallery, protocol.gallery_gt_boxes(),
                                               det_image, det_boxes, det_scores, det_thresh=0.01)
    print(f'detection AP {det_metrics.average_precision:.4f}, recall {det_metrics.recall:.4f} '
          f'(score >= 0.01): ps_tf {time.perf_counter() - started:.2f} s')
    loop_queries = FLAGS.loop_queries or NUM_QUERIES
    for size in sizes:
        started = time.perf_counter()
        problem = cuhk_sysu.search_problem(protocol, size)
        kept = search.GalleryDetections.keep(det_image, det_boxes, det_scores, det_embeddings,
                                             NUM_IMAGES, 0.5)
        result = search.evaluate_search(problem, kept, query_embeddings)
        vectorised = time.perf_counter() - started

        gallery_dets, gallery_feats = per_image_detections(det_image, det_boxes, det_scores,
                                                           det_embeddings, NUM_IMAGES)
        started = time.perf_counter()
        aps, accs = loop_search(protocol, gallery_dets, gallery_feats, query_embeddings, size,
                                loop_queries)
        loop = (time.perf_counter() - started) * NUM_QUERIES / loop_queries
        ap_error = np.abs(result.average_precision[:loop_queries] - aps).max()
        top_k_differences = int(np.sum(result.top_k[:loop_queries] != accs))
        agree = ap_error <= 1e-6 and top_k_differences == 0
        summary = result.summary()
        print(f'gallery {size}: mAP {summary["mAP"]:.4f} top-1 {summary["top1"]:.4f} | '
              f'ps_tf {vectorised:.2f} s, loop {loop:.2f} s'
              f'{" (scaled from %d queries)" % loop_queries if loop_queries < NUM_QUERIES else ""}'
              f', ratio {loop / vectorised:.1f}x | max |AP diff| {ap_error:.2e}, top-k '
              f'differences {top_k_differences}: {"agree" if agree else "DISAGREE"}')


if __name__ == '__main__':
    app.run(main)
