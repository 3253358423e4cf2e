"""CUHK-SYSU search: hand-computed AP / top-k for every quirk of
docs/evaluation.md#cuhk-sysu-search, and agreement with the SeqNet transcription on random
problems (both engine paths, ties included)."""

import numpy as np
import pytest

import eval_fixtures
import seqnet_reference
from ps_tf.evaluation import cuhk_sysu
from ps_tf.evaluation import protocol as protocol_lib
from ps_tf.evaluation import search

NAN = [np.nan] * 4
# f0: the query image (person 7); f1: person 7 (50x100, IoU threshold 0.5) + an unlabelled person;
# f2: an unlabelled person; f3: person 7, small (10x20: threshold 200/600 = 1/3);
# f4: person 7, but no detection scores >= 0.5; f5: not in the list (full set only).
GALLERY = eval_fixtures.gallery_from_lists([
    [(0, 0, 50, 100, 7)],
    [(10, 10, 60, 110, 7), (200, 0, 250, 100, -1)],
    [(0, 0, 50, 100, -1)],
    [(100, 100, 110, 120, 7)],
    [(0, 0, 40, 80, 7)],
    [(0, 0, 50, 100, -1)],
])
DETECTIONS = [  # image, box, score, similarity to the query
    (0, 0, 0, 50, 100, 0.9, 1.0),        # the query itself
    (1, 10, 10, 60, 110, 0.9, 0.6),      # on person 7, but not the most similar match: FP
    (1, 12, 10, 62, 110, 0.9, 0.9),      # on person 7, most similar match: TP
    (1, 200, 0, 250, 100, 0.9, 0.95),    # on the unlabelled person: FP
    (2, 0, 0, 50, 100, 0.9, 0.8),        # FP
    (3, 104, 100, 114, 120, 0.9, 0.7),   # IoU 120/280 = 0.43 >= 1/3: TP thanks to the small box
    (4, 0, 0, 40, 80, 0.3, 1.0),         # below det_thresh: f4's person is never found
    (5, 0, 0, 50, 100, 0.9, 0.99),       # outside the list
]
ENTRIES = [(1, (10, 10, 60, 110)), (3, (100, 100, 110, 120)), (4, (0, 0, 40, 80)), (2, None)]


def _protocol(entries_by_size):
    galleries = {}
    for size, entries in entries_by_size.items():
        galleries[size] = protocol_lib.GalleryLists(
            offsets=np.asarray([0, len(entries)], np.int64),
            image_index=np.asarray([e[0] for e in entries], np.int64),
            positive_box=np.asarray([NAN if e[1] is None else e[1] for e in entries], np.float64))
    queries = protocol_lib.QueryAnnotations(
        image_names=GALLERY.names[:1], cameras=np.asarray([-1]),
        boxes=np.asarray([[0, 0, 50, 100]], np.float64), person_ids=np.asarray([7]),
        galleries=galleries)
    return protocol_lib.Protocol('hand', GALLERY, queries)


def _search(protocol, size, rows=DETECTIONS, dedupe_gallery=True, det_thresh=0.5):
    predictions = eval_fixtures.detections(GALLERY, rows)
    det_image = predictions.aligned_to(GALLERY.names, 1)
    kept = search.GalleryDetections.keep(det_image, predictions.det_boxes, predictions.det_scores,
                                         predictions.det_embeddings, len(GALLERY.names),
                                         det_thresh)
    problem = cuhk_sysu.search_problem(protocol, size, dedupe_gallery)
    result = search.evaluate_search(problem, kept, predictions.query_embeddings)
    reference = seqnet_reference.eval_search_cuhk(
        protocol, *seqnet_reference.reference_inputs(
            protocol, det_image, predictions.det_boxes, predictions.det_scores,
            predictions.det_embeddings), predictions.query_embeddings, det_thresh, size,
        dedupe_gallery)
    np.testing.assert_allclose(result.average_precision, reference[0], atol=1e-12)
    np.testing.assert_array_equal(result.top_k, reference[1])
    return result


def test_hand_computed_ap_small_box_one_tp_per_image_and_undetected_person():
    result = _search(_protocol({4: ENTRIES}), 4)
    # Ranked: 0.95 F, 0.9 T, 0.8 F, 0.7 T, 0.6 F; three positive entries (f4's is never found).
    assert result.count_gt[0] == 3 and result.count_tp[0] == 2
    assert result.average_precision[0] == pytest.approx((1 / 2 + 2 / 4) / 3)
    np.testing.assert_array_equal(result.top_k[0], [0, 1, 1])


def test_recall_falls_when_no_detection_is_kept():
    rows = [r if r[0] != 3 else r[:5] + (0.2,) + r[6:] for r in DETECTIONS]   # f3 undetected
    result = _search(_protocol({4: ENTRIES}), 4, rows=rows)
    assert result.count_tp[0] == 1
    assert result.average_precision[0] == pytest.approx((1 / 2) / 3)


def test_duplicate_entry_same_box_under_both_semantics():
    protocol = _protocol({5: ENTRIES[:1] + ENTRIES})   # f1 listed twice
    seqnet = _search(protocol, 5, dedupe_gallery=True)
    # SeqNet: both entries count as GT, f1 is ranked once -> recall capped at 2/4.
    assert seqnet.count_gt[0] == 4 and seqnet.count_tp[0] == 2
    assert seqnet.average_precision[0] == pytest.approx((1 / 2 + 2 / 4) / 4)
    oim = _search(protocol, 5, dedupe_gallery=False)
    # OIM: f1 ranked twice: 0.95 F F, 0.9 T T, 0.8 F, 0.7 T, 0.6 F F -> three TPs.
    assert oim.count_tp[0] == 3
    assert oim.average_precision[0] == pytest.approx((2 / 4 + 2 / 4 + 3 / 6) / 4)
    np.testing.assert_array_equal(oim.top_k[0], [0, 1, 1])


def test_duplicate_entry_with_another_box_under_both_semantics():
    # f1 listed first with person 7's box, then with the unlabelled person's box (annotation noise).
    protocol = _protocol({5: ENTRIES[:1] + [(1, (200, 0, 250, 100))] + ENTRIES[1:]})
    seqnet = _search(protocol, 5, dedupe_gallery=True)
    assert seqnet.count_tp[0] == 2   # the first entry's box wins
    oim = _search(protocol, 5, dedupe_gallery=False)
    # Second copy of f1: the 0.95 detection is its TP, the 0.9 one an FP. Ranked: 0.95 T F,
    # 0.9 T F, 0.8 F, 0.7 T, 0.6 F F.
    assert oim.count_tp[0] == 3
    assert oim.average_precision[0] == pytest.approx((1 / 2 + 2 / 4 + 3 / 6) / 4)
    # Top-1 is the tie at rank 1 (0.95 T and F), broken as the reference's np.argsort breaks it:
    # `_search` checks that against the reference. NumPy's default sort picks its algorithm by
    # CPU (AVX-512 or not), so the tie goes one way or the other by machine; only top-5/10 are
    # fixed here.
    np.testing.assert_array_equal(oim.top_k[0][1:], [1, 1])


def test_query_image_in_its_own_gallery_is_kept():
    result = _search(_protocol({5: [(0, (0, 0, 50, 100))] + ENTRIES}), 5)
    # The query box itself is a free TP at rank 1: 1.0 T, 0.95 F, 0.9 T, 0.8 F, 0.7 T.
    assert result.count_gt[0] == 4 and result.count_tp[0] == 3
    assert result.average_precision[0] == pytest.approx((1 + 2 / 3 + 3 / 5) / 4)
    np.testing.assert_array_equal(result.top_k[0], [1, 1, 1])


def test_full_set_adds_every_other_image_but_the_query_image():
    result = _search(_protocol({4: ENTRIES}), cuhk_sysu.FULL_SET)
    # f5 (0.99, negative) joins; f0 (the query image, 1.0) does not; count_gt unchanged.
    assert result.count_gt[0] == 3
    assert result.average_precision[0] == pytest.approx((1 / 3 + 2 / 5) / 3)
    np.testing.assert_array_equal(result.top_k[0], [0, 1, 1])


@pytest.mark.parametrize('tied', [0.9, 0.7])
def test_tied_scores(tied):
    # The unlabelled person's detection ties with a TP: AP groups the tie; top-k follows the
    # reference's argsort order (checked against the transcription inside `_search`).
    rows = [r if r[1:5] != (200, 0, 250, 100) else r[:6] + (tied,) for r in DETECTIONS]
    result = _search(_protocol({4: ENTRIES}), 4, rows=rows)
    if tied == 0.9:   # 0.9 {T, F}, 0.8 F, 0.7 T, 0.6 F
        assert result.average_precision[0] == pytest.approx((1 / 2 + 2 / 4) / 3)
    else:             # 0.9 T, 0.8 F, 0.7 {T, F}, 0.6 F
        assert result.average_precision[0] == pytest.approx((1 + 2 / 4) / 3)
        np.testing.assert_array_equal(result.top_k[0], [1, 1, 1])


def test_unknown_gallery_size_is_refused():
    with pytest.raises(ValueError, match='no gallery lists of size 7'):
        cuhk_sysu.search_problem(_protocol({4: ENTRIES}), 7)


@pytest.mark.parametrize('seed', range(8))
@pytest.mark.parametrize('path', ['sparse', 'dense'])
def test_matches_seqnet_on_random_problems(seed, path, monkeypatch):
    monkeypatch.setattr(search, 'SPARSE_MAX_FRACTION', 1.1 if path == 'sparse' else 0.0)
    if seed % 2:   # several chunks of queries
        monkeypatch.setattr(search, 'CHUNK_ELEMENTS', 200)
    rng = np.random.default_rng(seed)
    protocol = eval_fixtures.random_protocol(rng, num_images=30, num_identities=12)
    predictions = eval_fixtures.random_predictions(rng, protocol, quantised=seed % 2 == 0,
                                                   signal=2.0)
    det_image = predictions.aligned_to(protocol.gallery.names, len(protocol.queries))
    inputs = seqnet_reference.reference_inputs(protocol, det_image, predictions.det_boxes,
                                               predictions.det_scores, predictions.det_embeddings)
    kept = search.GalleryDetections.keep(det_image, predictions.det_boxes, predictions.det_scores,
                                         predictions.det_embeddings, len(protocol.gallery.names),
                                         0.5)
    for size in protocol.gallery_sizes + [cuhk_sysu.FULL_SET]:
        for dedupe in (True, False):
            problem = cuhk_sysu.search_problem(protocol, size, dedupe)
            result = search.evaluate_search(problem, kept, predictions.query_embeddings)
            aps, accs = seqnet_reference.eval_search_cuhk(
                protocol, *inputs, predictions.query_embeddings, 0.5, size, dedupe)
            np.testing.assert_allclose(result.average_precision, aps, atol=1e-9)
            np.testing.assert_array_equal(result.top_k, accs)


@pytest.mark.parametrize('path', ['sparse', 'dense'])
def test_no_kept_detection_at_all(path, monkeypatch):
    monkeypatch.setattr(search, 'SPARSE_MAX_FRACTION', 1.1 if path == 'sparse' else 0.0)
    result = _search(_protocol({4: ENTRIES}), 4, det_thresh=0.95)
    assert result.count_gt[0] == 3 and result.count_tp[0] == 0
    assert result.average_precision[0] == 0.0
    np.testing.assert_array_equal(result.top_k[0], [0, 0, 0])


def test_search_threshold_is_inclusive_in_float32():
    # Every score is float32(0.3) < 0.3 in float64: all are kept, so f4's person is found too.
    rows = [r[:5] + (np.float32(0.3),) + r[6:] for r in DETECTIONS]
    result = _search(_protocol({4: ENTRIES}), 4, rows=rows, det_thresh=0.3)
    assert result.count_tp[0] == 3
