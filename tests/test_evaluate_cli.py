"""evaluate.py end to end on `synthetic_person_search/tiny`: predictions made from the ground
truth with one embedding per identity score 1.0; the same with shuffled embeddings scores less;
a predictions file for another dataset is refused with the reason."""

import dataclasses
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from ps_tf.evaluation import predictions as predictions_lib
from ps_tf.evaluation import protocol as protocol_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATASET = 'synthetic_person_search/tiny'


def _ground_truth_predictions(protocol):
    """Every non-ignore GT box as a detection; one-hot embedding per identity (one shared by the
    unlabelled people)."""
    gallery = protocol.gallery
    keep = ~gallery.ignore
    person_ids = gallery.person_ids[keep]
    identities = np.unique(np.r_[person_ids, protocol.queries.person_ids])
    codes = np.eye(len(identities), dtype=np.float32)
    return predictions_lib.Predictions(
        gallery_image_names=gallery.names[::-1].copy(),      # any order
        det_image_index=(len(gallery.names) - 1 - gallery.box_image[keep]).astype(np.int64),
        det_boxes=gallery.boxes[keep].astype(np.float32),
        det_scores=np.full(int(keep.sum()), 0.9, np.float32),
        det_embeddings=codes[np.searchsorted(identities, person_ids)],
        query_embeddings=codes[np.searchsorted(identities, protocol.queries.person_ids)])


def _evaluate(data_dir, predictions_path, *flags):
    command = [sys.executable, str(ROOT / 'evaluate.py'), f'--dataset={DATASET}',
               f'--data_dir={data_dir}', f'--predictions={predictions_path}', *flags]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.fixture(scope='module')
def protocol(tiny_synthetic_data_dir):
    return protocol_lib.load_protocol(DATASET, tiny_synthetic_data_dir)


def test_ground_truth_predictions_score_one(tiny_synthetic_data_dir, protocol, tmp_path):
    assert protocol.style == 'cuhk_sysu'
    path = tmp_path / 'predictions.npz'
    predictions_lib.write_predictions(str(path), _ground_truth_predictions(protocol))
    output = tmp_path / 'metrics.json'
    result = _evaluate(tiny_synthetic_data_dir, path, f'--output_json={output}')
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'mAP' in result.stdout and 'full set' in result.stdout
    rows = json.loads(output.read_text())['results']
    assert [row['gallery_size'] for row in rows] == protocol.gallery_sizes + [-1]
    for row in rows:
        for key in ('mAP', 'top1', 'top5', 'top10', 'det_ap', 'det_recall'):
            assert row[key] == pytest.approx(1.0), (key, row)
        assert row['dataset'] == DATASET and row['det_thresh'] == 0.5
        assert row['detection_metric_thresh'] == 0.01 and row['dedupe_gallery'] is True


def test_shuffled_embeddings_score_less(tiny_synthetic_data_dir, protocol, tmp_path):
    perfect = _ground_truth_predictions(protocol)
    shuffled = dataclasses.replace(perfect, det_embeddings=np.roll(perfect.det_embeddings, 1, 0))
    path = tmp_path / 'shuffled.npz'
    predictions_lib.write_predictions(str(path), shuffled)
    output = tmp_path / 'metrics.json'
    size = protocol.gallery_sizes[-1]
    result = _evaluate(tiny_synthetic_data_dir, path, f'--output_json={output}',
                       f'--gallery_sizes={size}', '--det_thresh=0.3')
    assert result.returncode == 0, result.stderr[-3000:]
    row, = json.loads(output.read_text())['results']
    assert row['gallery_size'] == size and row['det_thresh'] == 0.3
    assert row['mAP'] < 1.0 and row['det_ap'] == pytest.approx(1.0)


def test_mismatched_predictions_are_refused(tiny_synthetic_data_dir, protocol, tmp_path):
    perfect = _ground_truth_predictions(protocol)
    names = perfect.gallery_image_names.copy()
    names[0] = 'elsewhere.jpg'
    path = tmp_path / 'other.npz'
    predictions_lib.write_predictions(
        str(path), dataclasses.replace(perfect, gallery_image_names=names))
    result = _evaluate(tiny_synthetic_data_dir, path)
    assert result.returncode != 0
    assert 'do not match the dataset gallery' in result.stderr


def test_max_detections_sweep_writes_every_row_and_the_best(tiny_synthetic_data_dir, protocol,
                                                            tmp_path):
    """Ground-truth detections: with a cap of 50 per image nothing is dropped (mAP 1); with 1,
    only the first person of each image stays ranked."""
    path = tmp_path / 'predictions.npz'
    predictions_lib.write_predictions(str(path), _ground_truth_predictions(protocol))
    output = tmp_path / 'metrics.json'
    size = protocol.gallery_sizes[-1]
    result = _evaluate(tiny_synthetic_data_dir, path, f'--output_json={output}',
                       f'--gallery_sizes={size}', '--max_detections_per_image=1,50')
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'max dets/image' in result.stdout and 'by mAP' in result.stdout
    content = json.loads(output.read_text())
    rows = content['results']
    assert [row['max_detections_per_image'] for row in rows] == [1, 50]
    assert rows[1]['mAP'] == pytest.approx(1.0)
    best_value = 1 if rows[0]['mAP'] >= rows[1]['mAP'] else 50
    assert [row['max_detections_per_image'] for row in content['best']] == [best_value]
    assert [row['best_of_sweep'] for row in rows] == [best_value == 1, best_value == 50]
    assert content['sweep'] == {'setting': 'max_detections_per_image', 'values': [1, 50],
                                'selected_by': 'mAP'}


def test_bad_max_detections_is_refused(tiny_synthetic_data_dir, protocol, tmp_path):
    path = tmp_path / 'predictions.npz'
    predictions_lib.write_predictions(str(path), _ground_truth_predictions(protocol))
    result = _evaluate(tiny_synthetic_data_dir, path, '--max_detections_per_image=3,0')
    assert result.returncode != 0
    assert "--max_detections_per_image: '0' is not >= 1" in result.stderr
