"""Random person-search problems for the evaluation tests, built straight into ps_tf's protocol
structures (no TFDS), with every quirk of docs/evaluation.md#search-protocols: duplicate gallery
entries (same and different boxes), the query's own image in its list, small boxes, several
detections on one person, images without kept detections, and (optionally) quantised embeddings
that tie exactly."""

import numpy as np

from ps_tf.evaluation import predictions as predictions_lib
from ps_tf.evaluation import protocol as protocol_lib


def _unit(rows):
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def random_gallery(rng, num_images=40, num_identities=10, num_cameras=3, float_boxes=False):
    """Gallery annotations; identity i appears in 2-4 images (never twice in one, except once)."""
    boxes, pids, counts = [], [], []
    appearances = {i: rng.choice(num_images, size=rng.integers(2, 5), replace=False)
                   for i in range(num_identities)}
    per_image = [[] for _ in range(num_images)]
    for identity, images in appearances.items():
        for image in images:
            per_image[image].append(identity)
    for image, identities in enumerate(per_image):
        num_unlabelled = int(rng.integers(0 if identities else 1, 3))
        identities = identities + [protocol_lib.NO_IDENTITY] * num_unlabelled
        if image == 1 and identities[0] != protocol_lib.NO_IDENTITY:
            identities.append(identities[0])   # one identity annotated twice in a frame
        for pid in identities:
            small = rng.random() < 0.2
            w = int(rng.integers(4, 15)) if small else int(rng.integers(20, 80))
            h = int(rng.integers(8, 30)) if small else int(rng.integers(40, 160))
            x, y = int(rng.integers(-5, 300)), int(rng.integers(-5, 200))
            box = np.asarray([x, y, x + w, y + h], np.float64)
            if float_boxes:
                box = box + np.round(rng.uniform(-0.9, 0.9, 4), 4)
                box[2:] = np.maximum(box[2:], box[:2] + 1)
            boxes.append(box)
            pids.append(pid)
        counts.append(len(identities))
    return protocol_lib.GalleryAnnotations(
        names=np.asarray([f'img{n:04d}.jpg' for n in range(num_images)]),
        cameras=rng.integers(1, num_cameras + 1, num_images).astype(np.int64),
        box_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        boxes=np.asarray(boxes, np.float64).reshape(-1, 4),
        person_ids=np.asarray(pids, np.int64),
        ignore=np.zeros(len(pids), bool),
    )


def _first_box(gallery, image, identity):
    rows = np.arange(gallery.box_offsets[image], gallery.box_offsets[image + 1])
    return gallery.boxes[rows[gallery.person_ids[rows] == identity][0]]


def random_protocol(rng, style='cuhk_sysu', num_images=40, num_identities=10,
                    gallery_sizes=(8, 15), float_boxes=False, quirks=True):
    """A protocol with one query per identity, CUHK-style lists (with quirks) or PRW-style."""
    gallery = random_gallery(rng, num_images, num_identities, float_boxes=float_boxes)
    box_image = gallery.box_image
    query_images, query_boxes = [], []
    occurrences = []
    for identity in range(num_identities):
        images = np.unique(box_image[gallery.person_ids == identity])
        query_image = int(rng.choice(images))
        query_images.append(query_image)
        query_boxes.append(_first_box(gallery, query_image, identity))
        occurrences.append([int(i) for i in images if i != query_image])
    galleries = {}
    if style == 'cuhk_sysu':
        for size in gallery_sizes:
            offsets, image_index, positive_box = [0], [], []
            for q in range(num_identities):
                entries = [(i, _first_box(gallery, i, q)) for i in occurrences[q]]
                if quirks and q % 4 == 1:      # duplicate entry, same box
                    entries.append(entries[0])
                if quirks and q % 4 == 2:      # duplicate entry, another box of that image
                    other = gallery.boxes[gallery.box_offsets[entries[0][0]]]
                    entries.append((entries[0][0], other + np.asarray([1, 0, 1, 0])))
                if quirks and q % 4 == 3:      # the query image itself, as a positive
                    entries.insert(0, (query_images[q], query_boxes[q]))
                negatives = [i for i in rng.permutation(num_images)
                             if i not in occurrences[q] and i != query_images[q]]
                entries += [(int(i), None) for i in negatives[:max(0, size - len(entries))]]
                if quirks and q % 5 == 0:      # a negative listed twice
                    entries.append(entries[-1])
                for image, box in entries:
                    image_index.append(image)
                    positive_box.append(np.full(4, np.nan) if box is None else box)
                offsets.append(len(image_index))
            galleries[size] = protocol_lib.GalleryLists(
                offsets=np.asarray(offsets, np.int64),
                image_index=np.asarray(image_index, np.int64),
                positive_box=np.asarray(positive_box, np.float64).reshape(-1, 4))
    queries = protocol_lib.QueryAnnotations(
        image_names=gallery.names[query_images],
        cameras=gallery.cameras[query_images],
        boxes=np.asarray(query_boxes).reshape(-1, 4),
        person_ids=np.arange(num_identities, dtype=np.int64),
        galleries=galleries)
    convention = protocol_lib.SEQNET_PRW if style == 'prw' else protocol_lib.TRUNCATE
    return protocol_lib.Protocol(dataset=f'random_{style}', gallery=gallery, queries=queries,
                                 box_convention=convention)


def random_predictions(rng, protocol, dim=16, quantised=False, signal=1.0, shuffle=True):
    """Detections around most GT boxes (some doubled), random extra boxes, random scores."""
    gallery = protocol.gallery
    num_identities = int(max(gallery.person_ids.max(initial=0), protocol.queries.person_ids.max(
        initial=0))) + 1
    if quantised:
        codes = np.eye(dim, dtype=np.float32)[rng.integers(0, 3, num_identities + 1)]
    else:
        codes = _unit(rng.normal(size=(num_identities + 1, dim)))

    def embed(pids):
        pids = np.where(np.asarray(pids) < 0, num_identities, pids)
        if quantised:
            return codes[pids]
        return _unit(signal * codes[pids] + rng.normal(size=(len(pids), dim)))

    det_image, det_boxes, det_pid = [], [], []
    for n in range(len(gallery.names)):
        rows = np.arange(gallery.box_offsets[n], gallery.box_offsets[n + 1])
        for row in rows:
            copies = int(rng.choice([0, 1, 1, 1, 2]))
            for _ in range(copies):
                box = gallery.boxes[row] + rng.uniform(-3, 3, 4)
                box[2:] = np.maximum(box[2:], box[:2] + 1)
                det_image.append(n)
                det_boxes.append(box)
                det_pid.append(gallery.person_ids[row])
        for _ in range(int(rng.integers(0, 3))):
            x, y = rng.uniform(0, 300), rng.uniform(0, 200)
            det_image.append(n)
            det_boxes.append([x, y, x + rng.uniform(5, 60), y + rng.uniform(10, 120)])
            det_pid.append(-1)
    det_image = np.asarray(det_image, np.int64)
    scores = rng.random(len(det_image)).astype(np.float32)
    if quantised:
        scores = np.round(scores * 4) / 4
    embeddings = embed(det_pid)
    names = gallery.names.copy()
    if shuffle:   # gallery names in another order than the protocol's
        permutation = rng.permutation(len(names))
        names = names[permutation]
        det_image = np.argsort(permutation)[det_image]
    return predictions_lib.Predictions(
        gallery_image_names=names,
        det_image_index=det_image,
        det_boxes=np.asarray(det_boxes, np.float32).reshape(-1, 4),
        det_scores=scores.astype(np.float32),
        det_embeddings=embeddings,
        query_embeddings=embed(protocol.queries.person_ids),
    )


# ----------------------------------------------------------------------------- hand-made cases


def gallery_from_lists(people, cameras=None):
    """people: per image, a list of (x1, y1, x2, y2, person_id)."""
    counts = [len(p) for p in people]
    rows = [r for image in people for r in image]
    return protocol_lib.GalleryAnnotations(
        names=np.asarray([f'f{n}.jpg' for n in range(len(people))]),
        cameras=np.asarray(cameras if cameras is not None else [-1] * len(people), np.int64),
        box_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        boxes=np.asarray([r[:4] for r in rows], np.float64).reshape(-1, 4),
        person_ids=np.asarray([r[4] for r in rows], np.int64),
        ignore=np.zeros(len(rows), bool))


def embedding_with_similarity(similarity, dim=4):
    """A unit vector whose dot product with the query embedding e_0 is exactly `similarity`."""
    vector = np.zeros(dim, np.float32)
    vector[0] = similarity
    vector[1] = np.sqrt(1.0 - np.float64(np.float32(similarity)) ** 2)
    return vector


def detections(gallery, rows):
    """rows: (image, x1, y1, x2, y2, score, similarity to e_0) -> Predictions, one query (e_0)."""
    dim = 4
    return predictions_lib.Predictions(
        gallery_image_names=gallery.names,
        det_image_index=np.asarray([r[0] for r in rows], np.int64),
        det_boxes=np.asarray([r[1:5] for r in rows], np.float32).reshape(-1, 4),
        det_scores=np.asarray([r[5] for r in rows], np.float32),
        det_embeddings=np.asarray([embedding_with_similarity(r[6], dim) for r in rows],
                                  np.float32).reshape(-1, dim),
        query_embeddings=np.eye(1, dim, dtype=np.float32))
