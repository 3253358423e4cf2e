"""Detection AP of stage-1 detectors on the gallery split of each dataset: how well a detector
trained on one world finds people in another (issue 17's "no transfer"), without stage 2.

    python experiments/detector_ap.py --models=scratch=runs/a,pretrained=runs/b \
        --datasets=synthetic_person_search/default,synthetic_person_search/domain_b \
        --output=runs/detector_ap.json

Each model is a `train.py` model_dir (its stage-1 `config.json` and `checkpoints/`), run at its
own image size with its trained detection settings; AP and recall are the protocol's (IoU 0.5,
detections scoring >= 0.01, as stage 1's validation reports them).
"""

from __future__ import annotations

import ps_tf.quiet  # noqa: F401  (first: keeps TensorFlow's start-up noise off stderr)

import os
import time

import tensorflow as tf
from absl import app, flags

import tfds_builders  # noqa: F401  (registers the ps_tf datasets)
from ps_tf import atomic
from ps_tf.data import datasets as datasets_lib
from ps_tf.evaluation import detection_split
from ps_tf.models.loading import restore_detector

flags.DEFINE_list('models', None, 'name=train.py model_dir,...')
DATASETS = ['synthetic_person_search/default', 'synthetic_person_search/domain_b']

flags.DEFINE_list('datasets', DATASETS, 'TFDS datasets (their gallery split).')
flags.DEFINE_integer('batch_size', 8, 'Images per forward pass.')
flags.DEFINE_string('data_dir', None, 'TFDS data directory (default: the TFDS default).')
flags.DEFINE_string('output', None, 'Rows as JSON.')
FLAGS = flags.FLAGS


def detector_ap(models: dict[str, str], datasets: list[str], batch_size: int = 8,
                data_dir: str | None = None) -> list[dict]:
    """One row per (model, dataset): detection AP and recall on the dataset's gallery split."""
    rows = []
    for name, model_dir in models.items():
        detector, config, checkpoint = restore_detector(model_dir, precision='float32')
        detect = tf.function(detector.detect, reduce_retracing=True)
        for dataset in datasets:
            started = time.perf_counter()
            split = datasets_lib.detection_eval_dataset(dataset, 'gallery', config.image_size,
                                                        batch_size, data_dir=data_dir,
                                                        resize_mode=config.resize_mode)
            result = detection_split.detection_metrics(detection_split.detect_split(detect, split))
            rows.append({'model': name, 'checkpoint': os.path.abspath(checkpoint),
                         'dataset': dataset, 'det_ap': result.average_precision,
                         'det_recall': result.recall,
                         'minutes': (time.perf_counter() - started) / 60})
            print(f'{name:>12} {dataset:<36} detection AP {result.average_precision:.4f} '
                  f'recall {result.recall:.4f}', flush=True)
    return rows


def main(argv):
    del argv
    if not FLAGS.models:
        raise app.UsageError('--models is required')
    models = dict(item.partition('=')[::2] for item in FLAGS.models)
    rows = detector_ap(models, FLAGS.datasets, FLAGS.batch_size, FLAGS.data_dir)
    if FLAGS.output:
        atomic.write_json(FLAGS.output, rows, sort_keys=False)
        print(f'wrote {FLAGS.output}')


if __name__ == '__main__':
    app.run(main)
