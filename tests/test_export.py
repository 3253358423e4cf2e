"""ps_tf/export.py (ps-export), the SavedModel's signatures, and the serving client's requests.

One random-weight J4 model (64 px, 8-d embeddings, score threshold 0 so that every image has
`max_detections` detections) is exported once for the module; the export itself reloads it in
a fresh process and compares every signature's outputs.
"""

import base64
import importlib.util
import json
import os
import pathlib
import stat

import numpy as np
import pytest
import tensorflow as tf

from ps_tf import export as export_lib
from ps_tf import serving
from ps_tf import serving_client
from ps_tf.ops.geometry import boxes_to_original, resize_and_pad

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAX_DETECTIONS = 6


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The random-weight model directory and the search CLI, shared with the search tests.
search_tests = _load('search_tests', ROOT / 'tests' / 'test_search.py')


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    model_dir = search_tests.random_model_dir(str(tmp_path_factory.mktemp('model')))
    module = serving.load_serving_module(model_dir, score_threshold=0.0,
                                         max_detections=MAX_DETECTIONS)
    export_dir = str(tmp_path_factory.mktemp('export'))
    path, differences = export_lib.export(module, export_dir, version=3)
    return model_dir, module, export_dir, path, differences


@pytest.fixture(scope='module')
def loaded(exported):
    return tf.saved_model.load(exported[3])


@pytest.mark.slow
def test_export_layout_and_fresh_process_outputs_equal(exported):
    _, module, export_dir, path, differences = exported
    assert path == os.path.join(export_dir, '3') and os.listdir(export_dir) == ['3']
    assert {'saved_model.pb', 'variables'} <= set(os.listdir(path))
    expected_keys = {f'{name}/{key}' for name in serving.SIGNATURE_NAMES if name != 'embed_boxes'
                     for key in serving.DETECTION_OUTPUTS} | {'embed_boxes/embeddings'}
    assert set(differences) == expected_keys
    assert all(value <= export_lib.TOLERANCE[key.split('/')[1]]
               for key, value in differences.items())
    # ... on outputs that are not trivially empty.
    outputs = serving.run_signatures(module.signatures(), serving.sample_inputs())
    for name in ('serving_default', 'detect_images', 'detect_examples'):
        np.testing.assert_array_equal(outputs[name]['num_detections'], [MAX_DETECTIONS] * 2)
        assert outputs[name]['detection_embeddings'].shape == (2, MAX_DETECTIONS, 8)
    assert outputs['embed_boxes']['embeddings'].shape == (2, 8)


def test_version_folder_has_the_modes_of_a_normal_folder(exported):
    # mkdtemp's 0700 would keep a TF Serving process of another user out.
    umask = os.umask(0)
    os.umask(umask)
    path = exported[3]
    for root, dirs, files in os.walk(path):
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o777 & ~umask, root
        for name in files:
            assert stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode) == 0o666 & ~umask
    if not umask & 0o005:
        assert os.stat(path).st_mode & 0o005 == 0o005      # others may list and enter it


def test_compare_outputs_can_fail():
    outputs = {'embed_boxes': {'embeddings': np.zeros((2, 8), np.float32)}}
    changed = {'embed_boxes': {'embeddings': np.full((2, 8), 0.01, np.float32)}}
    with pytest.raises(ValueError, match='differ by'):
        export_lib.compare_outputs(outputs, changed)
    with pytest.raises(ValueError, match='outputs'):
        export_lib.compare_outputs(outputs, {'embed_boxes': {}})


def test_existing_version_is_refused(exported):
    _, module, export_dir, _, _ = exported
    with pytest.raises(ValueError, match='exists already'):
        export_lib.export(module, export_dir, version=3)


def test_saved_model_cli_summary(exported):
    summary = export_lib.show_summary(exported[3])
    for name in serving.SIGNATURE_NAMES:
        assert f"signature_def['{name}']" in summary
    assert "inputs['boxes']" in summary and 'shape: (-1, 4)' in summary
    assert f'shape: (-1, {MAX_DETECTIONS}, 4)' in summary


def test_boxes_are_original_pixels_and_embed_boxes_reproduces_detections(exported, loaded):
    _, module, *_ = exported
    image = serving.sample_inputs()['detect_images']['images'][:1]          # (1, 96, 128, 3)
    outputs = {k: v.numpy() for k, v in
               loaded.signatures['detect_images'](images=tf.constant(image)).items()}
    # The same through the library's steps: resize + pad, the joint model, back to original.
    padded, image_info = resize_and_pad(image[0], module.image_size)
    direct = module.joint.detect_and_embed(padded[None], image_info[None, 1])
    np.testing.assert_allclose(outputs['detection_boxes'][0], boxes_to_original(
        direct['detection_boxes'][0], image_info).numpy(), atol=1e-3)
    boxes = outputs['detection_boxes'][0]
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
    assert boxes[:, 2].max() <= 128 and boxes[:, 3].max() <= 96     # x1, y1, x2, y2
    # Embedding the detected boxes again (the query path) gives the detections' embeddings.
    embedded = loaded.signatures['embed_boxes'](
        image_bytes=tf.io.encode_png(image[0]), boxes=tf.constant(boxes))['embeddings'].numpy()
    np.testing.assert_allclose(embedded, outputs['detection_embeddings'][0], atol=2e-3)


def test_a_stretching_module_serves_stretched_inputs(exported):
    """resize_mode='stretch' reaches the serving graph: outputs are the library's steps on the
    stretched image (image_info resized (S, S), a scale per axis), not the letterboxed ones."""
    _, module, *_ = exported
    assert module.resize_mode == 'letterbox'                 # the random model's stage-1 config
    stretching = serving.ServingModule(module.joint, module.image_size, resize_mode='stretch')
    image = serving.sample_inputs()['detect_images']['images'][:1]          # (1, 96, 128, 3)
    outputs = {k: v.numpy() for k, v in stretching.detect_images(tf.constant(image)).items()}
    padded, image_info = resize_and_pad(image[0], module.image_size, 'stretch')
    np.testing.assert_allclose(image_info[1:3], [[64, 64], [64 / 96, 64 / 128]], rtol=1e-6)
    direct = module.joint.detect_and_embed(padded[None], image_info[None, 1])
    np.testing.assert_allclose(outputs['detection_boxes'][0], boxes_to_original(
        direct['detection_boxes'][0], image_info).numpy(), atol=1e-3)
    letterboxed = module.detect_images(tf.constant(image))['detection_boxes'].numpy()
    assert not np.allclose(letterboxed, outputs['detection_boxes'], atol=1e-2)
    with pytest.raises(ValueError, match='resize_mode must be one of'):
        serving.ServingModule(module.joint, module.image_size, resize_mode='pad')


def test_bad_inputs_give_clear_errors(loaded):
    signatures = loaded.signatures
    with pytest.raises(tf.errors.InvalidArgumentError, match='Unknown image file format'):
        signatures['serving_default'](image_bytes=tf.constant([b'not an image']))
    with pytest.raises(tf.errors.InvalidArgumentError, match='image/encoded'):
        signatures['detect_examples'](
            examples=tf.constant([tf.train.Example().SerializeToString()]))
    png = tf.io.encode_png(tf.zeros([20, 30, 3], tf.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r'boxes must be \(M, 4\)'):
        signatures['embed_boxes'](image_bytes=png, boxes=tf.zeros([2, 3]))
    with pytest.raises(tf.errors.InvalidArgumentError, match='x2 > x1'):
        signatures['embed_boxes'](image_bytes=png, boxes=tf.constant([[10.0, 1, 5, 9]]))


def _run(signature, inputs):
    return {k: v.numpy() for k, v in signature(**inputs).items()}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_rest_payloads_decode_to_the_same_outputs(loaded):
    inputs = serving.sample_inputs()
    images = inputs['serving_default']['image_bytes']
    payload = json.loads(json.dumps(serving_client.rest_payload(images)))
    assert payload['signature_name'] == 'serving_default'
    decoded = [base64.b64decode(instance['b64']) for instance in payload['instances']]
    sig = loaded.signatures['serving_default']
    _assert_same(_run(sig, {'image_bytes': tf.constant(decoded)}),
                 _run(sig, {'image_bytes': tf.constant(images)}))

    boxes = inputs['embed_boxes']['boxes']
    payload = json.loads(json.dumps(serving_client.rest_embed_payload(images[0], boxes)))
    columns = payload['inputs']
    sig = loaded.signatures[payload['signature_name']]
    _assert_same(_run(sig, {'image_bytes': tf.constant(base64.b64decode(
                            columns['image_bytes']['b64'])),
                            'boxes': tf.constant(columns['boxes'], tf.float32)}),
                 _run(sig, {'image_bytes': tf.constant(images[0]), 'boxes': tf.constant(boxes)}))


def test_grpc_requests_decode_to_the_same_outputs(loaded):
    pytest.importorskip('tensorflow_serving.apis.predict_pb2')
    inputs = serving.sample_inputs()
    images = inputs['serving_default']['image_bytes']
    request = serving_client.grpc_request(images, model_name='people')
    assert request.model_spec.name == 'people'
    sig = loaded.signatures[request.model_spec.signature_name]
    decoded = {key: tf.constant(tf.make_ndarray(value)) for key, value in request.inputs.items()}
    _assert_same(_run(sig, decoded), _run(sig, {'image_bytes': tf.constant(images)}))

    boxes = inputs['embed_boxes']['boxes']
    request = serving_client.grpc_embed_request(images[0], boxes)
    sig = loaded.signatures[request.model_spec.signature_name]
    decoded = {key: tf.constant(tf.make_ndarray(value)) for key, value in request.inputs.items()}
    _assert_same(_run(sig, decoded),
                 _run(sig, {'image_bytes': tf.constant(images[0]), 'boxes': tf.constant(boxes)}))


def test_search_from_saved_model_equals_checkpoint(exported, tmp_path):
    model_dir, *_, path, _ = exported
    from ps_tf.search import pipeline
    gallery = tmp_path / 'gallery'
    gallery.mkdir()
    for seed in range(2):
        search_tests.save_png(gallery / f'{seed}.png', search_tests._gallery_image(seed))
    query = search_tests.save_png(tmp_path / 'q.png', search_tests._gallery_image(4))
    results = [pipeline.run(model, str(gallery), str(tmp_path / name), query_image=query,
                            query_box='8,10,24,50', top_k=5, progress=False, min_score=0.0,
                            **settings)
               for model, name, settings in [
                   (os.path.dirname(path), 'saved', {}),
                   (model_dir, 'checkpoint', {'score_threshold': 0.0,
                                              'max_detections': MAX_DETECTIONS})]]
    saved, checkpoint = (result['hits'] for result in results)
    assert len(saved) == 5
    for a, b in zip(saved, checkpoint):
        assert a['file'] == b['file']
        np.testing.assert_allclose(a['box'], b['box'], atol=0.02)
        assert abs(a['similarity'] - b['similarity']) < 1e-3


@pytest.mark.slow
def test_evaluating_the_saved_model_gives_the_checkpoints_numbers(exported, tmp_path,
                                                                  tiny_synthetic_data_dir):
    """evaluate.py --saved_model scores the export as the checkpoint it came from is scored (at
    the export's detection settings): the same detections, embeddings and metrics, with
    detections and with ground-truth boxes."""
    import json
    import subprocess
    import sys

    from ps_tf.evaluation import evaluator, inference, protocol, saved_model_inference
    from ps_tf.evaluation.predictions import Predictions

    _, module, export_dir, _, _ = exported
    dataset = 'synthetic_person_search/tiny'
    tiny = protocol.load_protocol(dataset, tiny_synthetic_data_dir)
    signatures = saved_model_inference.load_signatures(export_dir)
    for use_gt_boxes in (False, True):
        saved = saved_model_inference.predict_dataset(
            signatures, dataset, batch_size=2, use_gt_boxes=use_gt_boxes,
            data_dir=tiny_synthetic_data_dir)
        checkpoint = inference.predict_dataset(
            module.joint, dataset, module.image_size, batch_size=2, use_gt_boxes=use_gt_boxes,
            data_dir=tiny_synthetic_data_dir)
        np.testing.assert_array_equal(saved['gallery_image_names'],
                                      checkpoint['gallery_image_names'])
        np.testing.assert_array_equal(saved['det_image_index'], checkpoint['det_image_index'])
        assert len(saved['det_boxes']) > 0
        np.testing.assert_allclose(saved['det_boxes'], checkpoint['det_boxes'], atol=0.02)
        np.testing.assert_allclose(saved['det_scores'], checkpoint['det_scores'], atol=1e-4)
        np.testing.assert_allclose(saved['det_embeddings'], checkpoint['det_embeddings'],
                                   atol=1e-3)
        np.testing.assert_allclose(saved['query_embeddings'], checkpoint['query_embeddings'],
                                   atol=1e-3)
    expected = evaluator.evaluate_predictions(tiny, Predictions(**checkpoint))
    output = tmp_path / 'saved.json'
    result = subprocess.run(
        [sys.executable, str(ROOT / 'evaluate.py'), f'--dataset={dataset}',
         f'--data_dir={tiny_synthetic_data_dir}', f'--saved_model={export_dir}', '--use_gt_boxes',
         '--batch_size=2', f'--output_json={output}'],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(output.read_text())['results']
    assert [row['gallery_size'] for row in rows] == [row['gallery_size'] for row in expected]
    for row, reference in zip(rows, expected):
        assert row['use_gt_boxes'] and row['saved_model'] == export_dir
        for key in ('mAP', 'top1', 'det_ap'):
            assert abs(row[key] - reference[key]) < 1e-6, (key, row, reference)


def test_evaluating_a_folder_without_a_saved_model_names_it(tmp_path):
    from ps_tf.evaluation import saved_model_inference

    with pytest.raises(ValueError, match=f'{tmp_path} holds no SavedModel'):
        saved_model_inference.load_signatures(str(tmp_path))
