"""Exports a trained joint model as a SavedModel that TF Serving loads (docs/formats.md#savedmodel).

    python export/export_saved_model.py --checkpoint=runs/main --export_dir=exported

writes `exported/1/` (`--version`) with the signatures `serving_default` (encoded image bytes),
`detect_images` (uint8 tensor), `detect_examples` (serialized tf.train.Example) and
`embed_boxes` (see `ps_tf/serving.py` and `export/README.md`). The SavedModel is written to a
temporary directory, reloaded in a fresh Python process whose outputs must match the in-memory
model's on every signature, and only then renamed to `<export_dir>/<version>`, with the modes of
a folder made by `mkdir` (0755 directories and 0644 files under the usual umask 022, so that a TF
Serving process of another user can read it); finally the signatures are printed as
`saved_model_cli show --all` shows them.
"""

from __future__ import annotations

import ps_tf.quiet  # noqa: F401  (first: keeps TensorFlow's start-up noise off stderr)

import os
import pathlib
import pickle
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from ps_tf import serving

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Largest |difference| accepted between the in-memory and reloaded outputs (pixels for boxes).
TOLERANCE = {'detection_boxes': 1e-2, 'detection_scores': 1e-4, 'num_detections': 0,
             'detection_embeddings': 1e-4, 'embeddings': 1e-4}

# The fresh process: loads the SavedModel, runs every signature, pickles the outputs.
_CHILD = '''
import pickle, sys
import tensorflow as tf
from ps_tf import serving
saved_model_dir, workdir = sys.argv[1], sys.argv[2]
with open(workdir + "/inputs.pkl", "rb") as f:
    inputs = pickle.load(f)
loaded = tf.saved_model.load(saved_model_dir)
with open(workdir + "/outputs.pkl", "wb") as f:
    pickle.dump(serving.run_signatures(loaded.signatures, inputs), f)
'''


def reload_in_fresh_process(saved_model_dir: str, inputs: dict) -> dict:
    """Runs every signature of `saved_model_dir` on `inputs` in a new Python process.

    Returns:
        Outputs by signature and output name (numpy arrays).

    Raises:
        RuntimeError: the process failed (its stderr's tail in the message).
    """
    with tempfile.TemporaryDirectory() as workdir:
        with open(os.path.join(workdir, 'inputs.pkl'), 'wb') as f:
            pickle.dump(inputs, f)
        env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2',
               'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')])}
        result = subprocess.run(
            [sys.executable, '-c', _CHILD, saved_model_dir, workdir],
            capture_output=True, text=True, env=env, cwd=str(ROOT))
        if result.returncode != 0:
            raise RuntimeError(f'reloading {saved_model_dir} in a fresh process failed:\n'
                               f'{result.stderr[-3000:]}')
        with open(os.path.join(workdir, 'outputs.pkl'), 'rb') as f:
            return pickle.load(f)


def compare_outputs(expected: dict, actual: dict) -> dict[str, float]:
    """Largest |difference| per `signature/output`.

    Raises:
        ValueError: a signature or output is missing, a shape differs, or a difference exceeds
            `TOLERANCE`.
    """
    differences = {}
    for name, outputs in expected.items():
        if set(actual.get(name, {})) != set(outputs):
            raise ValueError(f'{name}: outputs {sorted(actual.get(name, {}))}, expected '
                             f'{sorted(outputs)}')
        for key, value in outputs.items():
            other = actual[name][key]
            if other.shape != value.shape:
                raise ValueError(f'{name}/{key}: shape {other.shape}, expected {value.shape}')
            difference = float(np.max(np.abs(other.astype(np.float64) - value), initial=0.0))
            if difference > TOLERANCE[key]:
                raise ValueError(f'{name}/{key}: reloaded outputs differ by {difference} '
                                 f'(tolerance {TOLERANCE[key]})')
            differences[f'{name}/{key}'] = difference
    return differences


def make_readable(path: str) -> None:
    """Gives the tree at `path` the modes `mkdir` and `open` would have given it: 0777 for
    directories and 0666 for files, less the process's umask (0755 / 0644 under umask 022).

    `tempfile.mkdtemp` makes its directory 0700 whatever the umask, and the rename keeps that
    mode: a TF Serving process running as another user could not read the model.
    """
    umask = os.umask(0)
    os.umask(umask)
    for root, _, files in os.walk(path):
        os.chmod(root, 0o777 & ~umask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~umask)


def export(module: serving.ServingModule, export_dir: str, version: int = 1,
           verify: bool = True, test_images: list[np.ndarray] | None = None
           ) -> tuple[str, dict[str, float]]:
    """Writes `<export_dir>/<version>/` atomically and checks it in a fresh process.

    Args:
        module: the serving module.
        export_dir: the versions' parent directory.
        version: the subdirectory written.
        verify: reload in a fresh process and compare every signature's outputs.
        test_images: (H, W, 3) uint8 images to compare on (default: two noise images).

    Returns:
        (the SavedModel directory, the largest output difference per signature/output; an
        empty dict when `verify` is False).

    Raises:
        ValueError: the version directory exists already, or the reloaded outputs differ.
    """
    if version < 1:
        raise ValueError(f'version must be a positive integer, got {version}')
    final = os.path.join(export_dir, str(version))
    if tf.io.gfile.exists(final):
        raise ValueError(f'{final} exists already: choose another --version')
    os.makedirs(export_dir, exist_ok=True)
    temporary = tempfile.mkdtemp(prefix=f'.{version}.tmp-', dir=export_dir)
    try:
        serving.save(module, temporary)
        make_readable(temporary)
        differences = {}
        if verify:
            inputs = serving.sample_inputs(images=test_images)
            expected = serving.run_signatures(module.signatures(), inputs)
            logging.info('verification detections per image: %s', {
                name: outputs['num_detections'].tolist() for name, outputs in expected.items()
                if 'num_detections' in outputs})
            differences = compare_outputs(expected, reload_in_fresh_process(temporary, inputs))
        os.rename(temporary, final)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return final, differences


def show_summary(saved_model_dir: str) -> str:
    """The signature part of `saved_model_cli show --dir <dir> --all` (tag-set `serve`), read
    from `saved_model.pb` without loading the model."""
    from tensorflow.core.framework import types_pb2
    from tensorflow.python.tools import saved_model_cli

    lines = ["MetaGraphDef with tag-set: 'serve' contains the following SignatureDefs:", '']
    signatures = saved_model_cli.get_signature_def_map(saved_model_dir, 'serve')
    for key, signature in sorted(signatures.items()):
        lines.append(f"signature_def['{key}']:")
        for kind, tensors in (('input', signature.inputs), ('output', signature.outputs)):
            lines.append(f'  The given SavedModel SignatureDef contains the following {kind}(s):')
            for name, info in sorted(tensors.items()):
                shape = ('unknown_rank' if info.tensor_shape.unknown_rank
                         else tuple(d.size for d in info.tensor_shape.dim))
                lines.append(f"    {kind}s['{name}'] tensor_info:")
                lines.append(f'        dtype: {types_pb2.DataType.Name(info.dtype)}')
                lines.append(f'        shape: {shape}')
                lines.append(f'        name: {info.name}')
        lines.append(f'  Method name is: {signature.method_name}')
        lines.append('')
    return '\n'.join(lines)


FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string('checkpoint', None, 'train.py model_dir, its reid/ directory, or a '
                        'stage-2 checkpoint (.../reid/checkpoints/ckpt-N).')
    flags.DEFINE_string('export_dir', None, 'Writes <export_dir>/<version>/.')
    flags.DEFINE_integer('version', 1, 'Model version (the subdirectory TF Serving loads).')
    flags.DEFINE_integer('image_size', None, 'Detector input side in pixels (default: the '
                         'trained one).')
    flags.DEFINE_float('score_threshold', None, 'Detection score threshold (default: trained).')
    flags.DEFINE_integer('max_detections', None, 'Detections per image (default: trained).')
    flags.DEFINE_bool('verify', True, 'Reload in a fresh process and compare outputs.')
    flags.DEFINE_list('test_images', None, 'Images for the comparison (default: two noise '
                      'images; give real ones so that the detections are compared too).')
    flags.mark_flags_as_required(['checkpoint', 'export_dir'])


def main(argv) -> None:
    del argv
    module = serving.load_serving_module(FLAGS.checkpoint, FLAGS.image_size,
                                         FLAGS.score_threshold, FLAGS.max_detections)
    test_images = None
    if FLAGS.test_images:
        test_images = [tf.io.decode_image(tf.io.read_file(path), channels=3,
                                          expand_animations=False).numpy()
                       for path in FLAGS.test_images]
    path, differences = export(module, FLAGS.export_dir, FLAGS.version, FLAGS.verify,
                               test_images)
    print(show_summary(path))
    for key, difference in differences.items():
        print(f'reloaded == in-memory: {key} max |diff| {difference:.2e}')
    logging.info('wrote %s', path)
    print(f'exported {path} (image_size {module.image_size}, score_threshold '
          f'{module.score_threshold}, max_detections {module.max_detections}, embedding_dim '
          f'{module.embedding_dim})')


if __name__ == '__main__':
    define_flags()
    app.run(main)
