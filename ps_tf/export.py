"""Exporting a trained joint model as a SavedModel for TF Serving (docs/formats.md#savedmodel).

`export` writes `<export_dir>/<version>/` with the signatures `serving_default` (encoded image
bytes), `detect_images` (uint8 tensor), `detect_examples` (serialized tf.train.Example) and
`embed_boxes` (see `ps_tf/serving.py` and `export/README.md`). The SavedModel is written to a
temporary directory, reloaded in a fresh Python process whose outputs must match the in-memory
model's on every signature, and only then renamed to `<export_dir>/<version>`, with the modes of
a folder made by `mkdir` (0755 directories and 0644 files under the usual umask 022, so that a TF
Serving process of another user can read it). `show_summary` prints the signatures as
`saved_model_cli show --all` shows them. The command is `ps-export`
(`ps_tf/commands/export.py`, also `python export/export_saved_model.py`).
"""

from __future__ import annotations

import os
import pathlib
import pickle
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf
from absl import logging

from ps_tf import serving

# The folder holding the ps_tf package: the fresh process imports the same ps_tf.
PACKAGE_PARENT = pathlib.Path(__file__).resolve().parents[1]
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
        python_path = os.pathsep.join([str(PACKAGE_PARENT), os.environ.get('PYTHONPATH', '')])
        env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2', 'PYTHONPATH': python_path}
        result = subprocess.run(
            [sys.executable, '-c', _CHILD, saved_model_dir, workdir],
            capture_output=True, text=True, env=env, cwd=str(PACKAGE_PARENT))
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
