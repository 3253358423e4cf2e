"""`ps-export`: exports a trained joint model as a SavedModel that TF Serving loads.

    ps-export --checkpoint=runs/main --export_dir=exported
    python export/export_saved_model.py --checkpoint=runs/main --export_dir=exported   # the same

writes `exported/1/` (`--version`), checked in a fresh process before it is renamed into place,
then prints the signatures (`ps_tf/export.py`, `export/README.md`).
"""

from __future__ import annotations

import ps_tf.quiet  # noqa: F401  (first: keeps TensorFlow's start-up noise off stderr)

import tensorflow as tf
from absl import flags, logging

from ps_tf import commands
from ps_tf import export as export_lib
from ps_tf import serving

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
    path, differences = export_lib.export(module, FLAGS.export_dir, FLAGS.version,
                                          FLAGS.verify, test_images)
    print(export_lib.show_summary(path))
    for key, difference in differences.items():
        print(f'reloaded == in-memory: {key} max |diff| {difference:.2e}')
    logging.info('wrote %s', path)
    print(f'exported {path} (image_size {module.image_size}, resize_mode {module.resize_mode}, '
          f'score_threshold {module.score_threshold}, max_detections {module.max_detections}, '
          f'embedding_dim {module.embedding_dim})')


def cli() -> None:
    """`ps-export`: parses the flags and exports."""
    define_flags()
    commands.run(main, __name__)


if __name__ == '__main__':
    cli()
