"""`ps-preview`: a PNG grid of dataset samples with their boxes and identity labels drawn.

(`python preview.py` in a checkout runs the same program.)

    python preview.py --dataset=synthetic_person_search/default --split=train \\
        --output=runs/preview.png
    python preview.py --dataset=prw --split=gallery --manual_dir=/data/PRW-v16.04.20

Identities have one colour each, people without identity are yellow ("?"), ignore regions red;
in a query split the query box is white. Builds the dataset first if it is not built yet, as
training does (`--manual_dir` for a release downloaded by hand; without it a missing
manual-download dataset fails with the `tfds build` command to run).
"""

from __future__ import annotations

import ps_tf.quiet  # noqa: F401  (first: keeps TensorFlow's start-up noise off stderr)

import pathlib

import tensorflow_datasets as tfds
from absl import app, flags

from ps_tf import atomic, commands, visualization
from ps_tf.data import datasets as datasets_lib

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string('dataset', 'synthetic_person_search/default', 'TFDS name[/config].')
    flags.DEFINE_string('split', 'train', 'Split to show (TFDS slicing works).')
    flags.DEFINE_integer('num_images', 12, 'How many examples to draw.')
    flags.DEFINE_integer('columns', 4, 'Grid columns.')
    flags.DEFINE_string('output', 'runs/preview.png', 'PNG file to write.')
    flags.DEFINE_string('data_dir', None, 'TFDS data dir (default: ~/tensorflow_datasets).')
    flags.DEFINE_string('manual_dir', None, 'Folder of a manually downloaded release.')


def main(argv) -> None:
    del argv
    if FLAGS.num_images < 1 or FLAGS.columns < 1:
        raise app.UsageError('--num_images and --columns must be at least 1')
    builder = datasets_lib.get_builder(FLAGS.dataset, FLAGS.data_dir, FLAGS.manual_dir)
    if FLAGS.split.split('[')[0] not in builder.info.splits:
        raise app.UsageError(f'{FLAGS.dataset} has no split {FLAGS.split!r}; it has '
                             f'{", ".join(sorted(builder.info.splits))}')
    dataset = builder.as_dataset(split=FLAGS.split, shuffle_files=False,
                                 read_config=tfds.ReadConfig(try_autocache=False))
    examples = list(tfds.as_numpy(dataset.take(FLAGS.num_images)))
    if not examples:
        raise app.UsageError(f'{FLAGS.dataset} split {FLAGS.split!r} has no examples')
    examples.sort(key=lambda e: int(e['protocol_index']))
    grid = visualization.preview_examples(examples, columns=FLAGS.columns)
    output = pathlib.Path(FLAGS.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(str(output)) as temporary:
        grid.save(temporary, format='PNG')
    print(f'preview: {output} ({len(examples)} examples of {FLAGS.dataset} {FLAGS.split})')


def cli() -> None:
    """`ps-preview`: parses the flags and draws the grid."""
    define_flags()
    commands.run(main, __name__)
