"""The three PRW readings on the miniature PRW release (`tfds_builders/prw/dummy_data`, built with
the PRW builder): cameras from file names, -2 people as people without identity, the SeqNet box
convention. Hand-computed from `tfds_builders/prw/make_dummy_data.py`.

Gallery (frame_test order): g0 c1s3_000200 (camera 1): 479, 5, -2; g1 c4s1_000400 (camera 4):
479, 933; g2 c6s2_000050 (camera 6): 933, 600, 600; g3 c5s3_000010 (camera 5): -2;
g4 c2s2_000020 (camera 2): 600, -2, 479. Queries: q0 479 in g0, q1 933 in g1, q2 600 in g2,
q3 479 in g1.

Predictions: one detection on every ground-truth box, scores falling with the box's order in its
frame (first box 0.9, then 0.8, 0.7). Query embedding: the identity's unit vector e_p. A person
with identity p is embedded 0.5 e_p + sqrt(0.75) u (u a vector of its own), so its similarity to
its own query is 0.5; a person without identity (e_479 + e_933 + e_600) / sqrt(3): similarity
1/sqrt(3) = 0.577 to every query, above the true matches; everything else 0.
"""

import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from ps_tf.evaluation import evaluator
from ps_tf.evaluation import predictions as predictions_lib
from ps_tf.evaluation import protocol as protocol_lib
from ps_tf.evaluation import sweep

DUMMY = pathlib.Path(__file__).resolve().parents[2] / 'tfds_builders' / 'prw' / 'dummy_data'
QUERY_IDS = (479, 933, 600)


@pytest.fixture(scope='module')
def protocol(tmp_path_factory):
    from tfds_builders.prw import prw_dataset_builder

    data_dir = str(tmp_path_factory.mktemp('prw_dummy'))
    prw_dataset_builder.Builder(data_dir=data_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(DUMMY)))
    return protocol_lib.load_protocol('prw', data_dir)


def _predictions(protocol):
    gallery = protocol.gallery
    num_boxes = len(gallery.person_ids)
    dim = len(QUERY_IDS) + num_boxes
    embeddings = np.zeros((num_boxes, dim), np.float64)
    for box, pid in enumerate(gallery.person_ids.tolist()):
        if pid in QUERY_IDS:
            embeddings[box, QUERY_IDS.index(pid)] = 0.5
            embeddings[box, len(QUERY_IDS) + box] = np.sqrt(0.75)
        elif pid == protocol_lib.NO_IDENTITY:
            embeddings[box, :len(QUERY_IDS)] = 1 / np.sqrt(3)
        else:
            embeddings[box, len(QUERY_IDS) + box] = 1.0
    rank_in_frame = np.arange(num_boxes) - gallery.box_offsets[gallery.box_image]
    queries = np.eye(len(QUERY_IDS), dim)[[QUERY_IDS.index(p)
                                           for p in protocol.queries.person_ids.tolist()]]
    return predictions_lib.Predictions(
        gallery_image_names=gallery.names,
        det_image_index=gallery.box_image.astype(np.int64),
        det_boxes=protocol.gallery_gt_boxes().astype(np.float32),
        det_scores=(0.9 - 0.1 * rank_in_frame).astype(np.float32),
        det_embeddings=embeddings.astype(np.float32),
        query_embeddings=queries.astype(np.float32))


def test_the_release_is_what_the_cases_assume(protocol):
    np.testing.assert_array_equal(protocol.gallery.cameras, [1, 4, 6, 5, 2])
    np.testing.assert_array_equal(protocol.gallery.person_ids,
                                  [479, 5, -1, 479, 933, 933, 600, 600, -1, 600, -1, 479])
    np.testing.assert_array_equal(protocol.queries.person_ids, [479, 933, 600, 479])
    np.testing.assert_array_equal(protocol.query_image_index, [0, 1, 2, 1])


def test_seqnet_protocol_sweep(protocol):
    """Standard gallery, det_thresh 0.

    N = 3 (everything): each query ranks the unidentified people of its gallery first; a query's
    two true positives tie at 0.5, and tied scores form one threshold (scikit-learn's AP).
    q0 (gallery g1-g4, GT g1, g4; unidentified in g3, g4): both TPs at ranks 3-4, precision 2/4
    at recall 1: AP 1/2. q1 (g0, g2-g4; GT g2; unidentified g0, g3, g4): TP at rank 4: 1/4.
    q2 (g0, g1, g3, g4; GT g4): 1/4. q3 (g0, g2-g4; GT g0, g4; three unidentified): 2/5.
    mAP = (1/2 + 1/4 + 1/4 + 2/5) / 4 = 7/20.
    N = 1 (first box of each frame: g0 479, g1 479, g2 933, g3 -2, g4 600): the one unidentified
    person (g3) ranks first. q0: TP g1 at rank 2, count_gt 2: (1/2)/2 = 1/4. q1: TP g2 at 2: 1/2.
    q2: TP g4 at 2: 1/2. q3: TP g0 at 2, count_gt 2: 1/4. mAP = 3/8: the best of the sweep.
    """
    rows, best = sweep.evaluate_sweep(protocol, _predictions(protocol),
                                      evaluator.EvalSettings(det_thresh=0.0), [3, 1])
    assert [row['mAP'] for row in rows] == pytest.approx([7 / 20, 3 / 8])
    assert [row['top1'] for row in rows] == [0.0, 0.0]
    assert [(row['max_detections_per_image'], row['gallery']) for row in best] == [
        (1, 'standard')]


def test_official_protocol_sweep(protocol):
    """Zheng et al.'s protocol, det_thresh 0: unidentified people are junk.

    N = 3: every query finds its cross-camera goods first (q0: g1, g4; q1: g2; q2: g4, its own
    frame's two 600s being same-camera junk; q3: g0, g4): AP 1 each, mAP 1.
    N = 1: q0 keeps the good in g1 (position 1) but misses 479 in g4 (num_good 2):
    AP = 1/2 * (1 + 1)/2 = 1/2; q1: g2, AP 1; q2: g4, AP 1; q3: g0, misses g4: 1/2. mAP = 3/4.
    Best: N = 3.
    """
    settings = evaluator.EvalSettings(det_thresh=0.0, protocol_style='prw_official')
    rows, best = sweep.evaluate_sweep(protocol, _predictions(protocol), settings, [1, 3])
    assert [row['mAP'] for row in rows] == pytest.approx([3 / 4, 1.0])
    assert [row['top1'] for row in rows] == [1.0, 1.0]
    assert [row['mean_recall'] for row in rows] == pytest.approx([3 / 4, 1.0])
    assert [row['max_detections_per_image'] for row in best] == [3]
