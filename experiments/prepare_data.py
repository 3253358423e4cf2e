"""Builds TFDS datasets in --data_dir (from their release folders for the manual-download ones).

Training builds its datasets itself; this step is for a dataset that is only evaluated on (Table
1c scores PRW-trained models on CUHK-SYSU, which no training step reads), since evaluate.py reads
prepared datasets only.

    python experiments/prepare_data.py --datasets=cuhk_sysu --manual_dir=cuhk_sysu=/data/cuhk_sysu
"""

from __future__ import annotations

from absl import app, flags

import tfds_builders  # noqa: F401  (registers the ps_tf datasets)
from ps_tf.data import datasets as datasets_lib

flags.DEFINE_list('datasets', [], 'TFDS names (with config) to build.')
flags.DEFINE_string('data_dir', None, 'TFDS data dir (default ~/tensorflow_datasets).')
flags.DEFINE_string('manual_dir', None, 'Release folder(s): one path, or "name=path,...".')
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    if not FLAGS.datasets:
        raise app.UsageError('--datasets is required')
    manual_dir = datasets_lib.parse_manual_dir(FLAGS.manual_dir)
    for name in FLAGS.datasets:
        builder = datasets_lib.get_builder(name, FLAGS.data_dir, manual_dir)
        print(f'{name}: ready in {builder.data_dir}', flush=True)


if __name__ == '__main__':
    app.run(main)
