"""box_errors.py on the tiny synthetic gallery: detections made from the ground truth with a known
resize and shift give back exactly that error; low-score detections are ignored."""

import json
import pathlib
import subprocess
import sys

import numpy as np

import box_errors
from ps_tf.evaluation import boxes as boxes_lib
from ps_tf.evaluation import predictions, protocol

ROOT = pathlib.Path(__file__).resolve().parents[2]
TINY = 'synthetic_person_search/tiny'
LOG_W, DX = 0.1, 0.05


def shifted(gt: np.ndarray) -> np.ndarray:
    """Each x1, y1, x2, y2 box e^LOG_W times as wide, its centre DX of its width to the right."""
    width = gt[:, 2] - gt[:, 0]
    centre = (gt[:, 0] + gt[:, 2]) / 2 + DX * width
    half = width * np.exp(LOG_W) / 2
    return np.stack([centre - half, gt[:, 1], centre + half, gt[:, 3]], axis=1)


def test_known_box_errors_are_measured(tiny_synthetic_data_dir, tmp_path):
    loaded = protocol.load_protocol(TINY, tiny_synthetic_data_dir)
    gallery = loaded.gallery
    labelled = (gallery.person_ids >= 0) & ~gallery.ignore
    image = gallery.box_image[labelled]
    gt = gallery.boxes[labelled]
    missed_image = image[0]              # the kept detections of this image are all dropped
    kept = image != missed_image
    # A kept detection per found box, plus a low-score decoy exactly on every ground truth.
    det_image = np.concatenate([image[kept], image])
    det_boxes = np.concatenate([shifted(gt[kept]), gt])
    det_scores = np.concatenate([np.full(kept.sum(), 0.9), np.full(len(gt), 0.1)])

    errors = box_errors.matched_box_errors(gallery, det_image, det_boxes, det_scores,
                                           det_thresh=0.5)
    np.testing.assert_allclose(errors['log_w'][kept], LOG_W, atol=1e-6)
    np.testing.assert_allclose(errors['dx'][kept], DX, atol=1e-6)
    np.testing.assert_allclose(errors['log_h'][kept], 0.0, atol=1e-6)
    np.testing.assert_allclose(errors['iou'][kept],
                               boxes_lib.paired_iou(gt[kept], shifted(gt[kept])), atol=1e-9)
    assert np.all(errors['iou'][~kept] == 0) and np.all(np.isnan(errors['dx'][~kept]))

    rows = box_errors.summarise(errors, min_iou=0.5)
    assert rows[0]['people'] == 'all' and rows[0]['boxes'] == len(gt)
    assert np.isclose(rows[0]['found'], kept.mean())
    assert sum(row['boxes'] for row in rows[1:]) == len(gt)   # height bins partition the boxes

    # The CLI reads the same detections from a predictions file.
    path = tmp_path / 'det.npz'
    num_queries = len(loaded.queries)
    unit = np.eye(4, dtype=np.float32)[0]
    predictions.write_predictions(str(path), predictions.Predictions(
        gallery_image_names=gallery.names, det_image_index=det_image,
        det_boxes=det_boxes.astype(np.float32), det_scores=det_scores.astype(np.float32),
        det_embeddings=np.tile(unit, (len(det_boxes), 1)),
        query_embeddings=np.tile(unit, (num_queries, 1))))
    out = tmp_path / 'errors.json'
    result = subprocess.run(
        [sys.executable, str(ROOT / 'experiments' / 'box_errors.py'), f'--dataset={TINY}',
         f'--data_dir={tiny_synthetic_data_dir}', f'--predictions={path}',
         f'--output_json={out}'], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'found' in result.stdout
    written = json.loads(out.read_text())['rows'][0]
    assert np.isclose(written['log_w_mean'], LOG_W, atol=1e-5)
    assert np.isclose(written['found'], rows[0]['found'])
