"""evaluate_predictions rows (metrics + settings) and the printed table, for both protocols."""

import numpy as np
import pytest

import eval_fixtures
import seqnet_reference
from ps_tf.evaluation import evaluator


def _setup(style, seed=0):
    rng = np.random.default_rng(seed)
    protocol = eval_fixtures.random_protocol(rng, style=style, num_images=25, num_identities=8,
                                             gallery_sizes=(6, 12))
    return protocol, eval_fixtures.random_predictions(rng, protocol, signal=2.0)


def test_cuhk_rows_cover_every_size_and_the_full_set():
    protocol, predictions = _setup('cuhk_sysu')
    rows = evaluator.evaluate_predictions(protocol, predictions)
    assert [row['gallery_size'] for row in rows] == [6, 12, -1]
    det_image = predictions.aligned_to(protocol.gallery.names, len(protocol.queries))
    annotations, dets, feats = seqnet_reference.reference_inputs(
        protocol, det_image, predictions.det_boxes, predictions.det_scores,
        predictions.det_embeddings)
    recall, ap = seqnet_reference.eval_detection(annotations, dets, det_thresh=0.01)
    for row in rows:
        assert set(evaluator.METRIC_KEYS) <= set(row)
        assert (row['det_ap'], row['det_recall']) == (pytest.approx(ap), pytest.approx(recall))
        aps, accs = seqnet_reference.eval_search_cuhk(
            protocol, annotations, dets, feats, predictions.query_embeddings, 0.5,
            row['gallery_size'], True)
        assert row['mAP'] == pytest.approx(aps.mean(), abs=1e-12)
        assert [row['top1'], row['top5'], row['top10']] == pytest.approx(accs.mean(0).tolist())
        assert row['protocol'] == 'cuhk_sysu' and row['dedupe_gallery'] is True
    table = evaluator.format_table(rows)
    assert 'full set' in table and 'fractions in 0-1' in table.splitlines()[0]
    # The printed numbers are the rows' (and the JSON's) fractions, not percentages.
    printed = table.splitlines()[3].split()
    assert printed[0] == '6'
    assert [float(v) for v in printed[1:]] == pytest.approx(
        [rows[0][k] for k in evaluator.METRIC_KEYS], abs=5e-5)


def test_prw_rows_and_settings():
    protocol, predictions = _setup('prw')
    settings = evaluator.EvalSettings(det_thresh=0.3, multi_view=True)
    row, = evaluator.evaluate_predictions(protocol, predictions, settings)
    assert (row['protocol'], row['gallery'], row['det_thresh']) == ('prw', 'multi_view', 0.3)
    assert 'multi_view' in evaluator.format_table([row])


def test_protocol_can_be_forced_and_unknown_styles_are_refused():
    protocol, predictions = _setup('cuhk_sysu')
    row, = evaluator.evaluate_predictions(protocol, predictions,
                                          evaluator.EvalSettings(protocol_style='prw'))
    assert row['gallery'] == 'standard'
    with pytest.raises(ValueError, match='unknown protocol style'):
        evaluator.evaluate_predictions(protocol, predictions,
                                       evaluator.EvalSettings(protocol_style='voc'))
    with pytest.raises(ValueError, match='no gallery lists of size 7'):
        evaluator.evaluate_predictions(protocol, predictions,
                                       evaluator.EvalSettings(gallery_sizes=[7]))
    prw_protocol, prw_predictions = _setup('prw')
    with pytest.raises(ValueError, match='carry no gallery lists'):
        evaluator.evaluate_predictions(prw_protocol, prw_predictions,
                                       evaluator.EvalSettings(protocol_style='cuhk_sysu'))
