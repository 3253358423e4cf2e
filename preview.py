"""Writes a PNG grid of dataset samples with their boxes and identity labels drawn.

    python preview.py --dataset=synthetic_person_search/default --split=train \
        --output=runs/preview.png

Identities have one colour each, people without identity are yellow ("?"), ignore regions red;
in a query split the query box is white. Builds the dataset first if it is not built yet
(`--manual_dir` for datasets whose release you downloaded by hand).
"""

import ps_tf.quiet  # noqa: F401  (first: keeps TensorFlow's start-up noise off stderr)

import pathlib

import tensorflow_datasets as tfds
from absl import app, flags, logging

import tfds_builders  # noqa: F401  (registers the ps_tf datasets)
from ps_tf import visualization

FLAGS = flags.FLAGS
flags.DEFINE_string('dataset', 'synthetic_person_search/default', 'TFDS name[/config].')
flags.DEFINE_string('split', 'train', 'Split to show.')
flags.DEFINE_integer('num_images', 12, 'How many examples to draw.')
flags.DEFINE_integer('columns', 4, 'Grid columns.')
flags.DEFINE_string('output', 'runs/preview.png', 'PNG file to write.')
flags.DEFINE_string('data_dir', None, 'TFDS data dir (default: ~/tensorflow_datasets).')
flags.DEFINE_string('manual_dir', None, 'Folder of a manually downloaded release.')


def main(argv):
    del argv
    builder = tfds.builder(FLAGS.dataset, data_dir=FLAGS.data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=FLAGS.manual_dir))
    dataset = builder.as_dataset(split=FLAGS.split, shuffle_files=False,
                                 read_config=tfds.ReadConfig(try_autocache=False))
    examples = list(tfds.as_numpy(dataset.take(FLAGS.num_images)))
    if not examples:
        raise app.UsageError(f'{FLAGS.dataset} split {FLAGS.split!r} has no examples')
    examples.sort(key=lambda e: int(e['protocol_index']))
    grid = visualization.preview_examples(examples, columns=FLAGS.columns)
    output = pathlib.Path(FLAGS.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    grid.save(output)
    logging.info('wrote %s (%d examples of %s/%s)', output, len(examples), FLAGS.dataset,
                 FLAGS.split)
    print(f'preview: {output} ({len(examples)} examples of {FLAGS.dataset} {FLAGS.split})')


if __name__ == '__main__':
    app.run(main)
