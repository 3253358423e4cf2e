"""How hard is the synthetic test split, and where does a model's search fail?

Issue 6 sets a target for J3 on `synthetic_person_search/default`: search mAP >= 0.80 and top-1
>= 0.85 at gallery 100. This script measures what stands between a model and that target:

- Look-alikes. For each query, the other people in its gallery (other identities and passers-by)
  dressed the same but for one clothing attribute (upper or lower colour, pattern, build or
  accessory). Identities are distinct attribute combinations, but passers-by draw theirs at
  random, and a gallery of 100 images holds ~300 people, so most queries have such a look-alike.
- A reference without learning: every ground-truth box as a grid of mean colours
  (`--template_grid`, default 16 x 8, RGB), searched with the ground-truth boxes.
- Where search fails: for the template and every predictions file given (made with
  `evaluate.py --checkpoint=... [--use_gt_boxes] --write_predictions=F`), mAP and top-1 over all
  queries, over the queries with and without a one-attribute look-alike, and by the height of
  the query person in pixels.

    python experiments/synthetic_difficulty.py --data_dir=~/tensorflow_datasets \\
        --predictions=runs/demo/gt_boxes.npz --output_json=runs/demo/difficulty.json
"""

from __future__ import annotations

import collections
import json
import os
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

FLAGS = flags.FLAGS
flags.DEFINE_string('data_dir', None, 'TFDS data dir holding the synthetic dataset (built if '
                    'missing).')
flags.DEFINE_string('config', 'default', 'synthetic_person_search config.')
flags.DEFINE_integer('gallery_size', 100, 'CUHK-SYSU-style gallery size.')
flags.DEFINE_list('predictions', [], 'Predictions files (.npz) to break down.')
flags.DEFINE_list('template_grid', ['16', '8'], 'Rows, columns of the mean-colour template.')
flags.DEFINE_string('write_template', None, 'Also write the template\'s predictions here.')
flags.DEFINE_string('output_json', None, 'Write the census and the breakdown here.')

CLOTHING = ('upper', 'lower', 'pattern', 'build', 'accessory')
HEIGHT_BINS = (0, 60, 100, 150)   # query person height, pixels: < 60, 60-100, 100-150, >= 150


def differing_attributes(a, b) -> tuple[str, ...]:
    """The clothing attributes in which two `Appearance`s differ (skin and hair aside)."""
    return tuple(name for name in CLOTHING if getattr(a, name) != getattr(b, name))


def gallery_people(world) -> dict[int, list[tuple[int, object]]]:
    """Test image index -> [(person id, appearance)] of everybody drawn in it (re-rendered: the
    passers-by's appearances are not stored in the dataset)."""
    from tfds_builders.synthetic_person_search import render
    people = {}
    for plan in world.test_images:
        _, _, person_ids, ignore, appearances = render.render_image_with_appearances(world, plan)
        people[plan.index] = [(int(p), a) for p, skip, a in zip(person_ids, ignore, appearances)
                              if not skip]
    return people


def look_alikes(world, gallery_size: int) -> list[dict]:
    """Per query (protocol order): the attributes in which its one-attribute look-alikes differ,
    and how many gallery people share all five clothing attributes with it."""
    people = gallery_people(world)
    census = []
    for query in world.queries:
        mine = world.appearances[query.identity]
        one_off, same = set(), 0
        for image in query.galleries[gallery_size]:
            for person_id, theirs in people[image]:
                if person_id == query.identity:
                    continue
                differ = differing_attributes(mine, theirs)
                same += not differ
                if len(differ) == 1:
                    one_off.add(differ[0])
        census.append({'one_attribute': sorted(one_off), 'same_clothes': same})
    return census


def colour_template_predictions(dataset: str, data_dir: str | None,
                                grid: tuple[int, int]) -> dict[str, np.ndarray]:
    """Predictions arrays (`ps_tf.evaluation.predictions`) whose detections are the gallery's
    ground-truth boxes (score 1) and whose embeddings are L2-normalised mean-colour grids."""
    import tensorflow_datasets as tfds
    from PIL import Image

    rows, columns = grid

    def template(image: np.ndarray, box: np.ndarray) -> np.ndarray:
        x1, y1, x2, y2 = np.round(box).astype(int)
        crop = Image.fromarray(image[max(y1, 0):y2, max(x1, 0):x2])
        colours = np.asarray(crop.resize((columns, rows), Image.BOX), np.float32).ravel()
        return colours / max(float(np.linalg.norm(colours)), 1e-6)

    names, image_index, boxes, embeddings = [], [], [], []
    for example in tfds.as_numpy(tfds.load(dataset, split='gallery', data_dir=data_dir)):
        names.append(example['image/filename'].decode())
        objects = example['objects']
        for box, ignore in zip(objects['box'], objects['ignore']):
            if not ignore:
                image_index.append(len(names) - 1)
                boxes.append(box)
                embeddings.append(template(example['image'], box))
    queries = sorted((int(e['protocol_index']), template(e['image'], e['query']['box']))
                     for e in tfds.as_numpy(tfds.load(dataset, split='query', data_dir=data_dir)))
    return {'gallery_image_names': np.asarray(names),
            'det_image_index': np.asarray(image_index, np.int64),
            'det_boxes': np.asarray(boxes, np.float32).reshape(-1, 4),
            'det_scores': np.ones(len(boxes), np.float32),
            'det_embeddings': np.asarray(embeddings, np.float32).reshape(len(boxes), -1),
            'query_embeddings': np.stack([e for _, e in queries]).astype(np.float32)}


def per_query_metrics(protocol, predictions, gallery_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(AP, top-1) of every query, as `evaluate.py` scores them (CUHK-SYSU protocol)."""
    from ps_tf.evaluation import cuhk_sysu, evaluator, search
    predictions.validate()
    image = predictions.aligned_to(protocol.gallery.names, len(protocol.queries))
    kept = search.GalleryDetections.keep(image, predictions.det_boxes, predictions.det_scores,
                                         predictions.det_embeddings,
                                         len(protocol.gallery.names),
                                         evaluator.EvalSettings().det_thresh)
    result = search.evaluate_search(cuhk_sysu.search_problem(protocol, gallery_size), kept,
                                    predictions.query_embeddings)
    return result.average_precision, result.top_k[:, 0]


def query_subsets(census: list[dict], query_heights: np.ndarray) -> dict[str, np.ndarray]:
    """Subset name -> boolean mask over queries."""
    twin = np.array([bool(c['one_attribute']) for c in census])
    subsets = {'all': np.ones(len(census), bool), 'with look-alike': twin,
               'without': ~twin}
    edges = list(HEIGHT_BINS) + [np.inf]
    for low, high in zip(edges[:-1], edges[1:]):
        name = f'h >= {low}' if high == np.inf else f'h {low}-{high}' if low else f'h < {high}'
        subsets[name] = (query_heights >= low) & (query_heights < high)
    return subsets


def breakdown(ap: np.ndarray, top1: np.ndarray, subsets: dict[str, np.ndarray]) -> dict:
    return {name: {'queries': int(mask.sum()),
                   'mAP': float(ap[mask].mean()) if mask.any() else float('nan'),
                   'top1': float(top1[mask].mean()) if mask.any() else float('nan')}
            for name, mask in subsets.items()}


def markdown_table(results: dict[str, dict]) -> str:
    first = next(iter(results.values()))
    header = ['model'] + [f'{name} ({row["queries"]})' for name, row in first.items()]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for model, rows in results.items():
        lines.append('| ' + ' | '.join([model] + [
            f'{rows[name]["mAP"]:.3f} / {rows[name]["top1"]:.3f}' for name in first]) + ' |')
    return '\n'.join(lines)


def main(argv):
    del argv
    import tensorflow_datasets as tfds

    from ps_tf.evaluation import predictions as predictions_lib
    from ps_tf.evaluation import protocol as protocol_lib
    from tfds_builders.synthetic_person_search import world as world_lib
    from tfds_builders.synthetic_person_search.synthetic_person_search_dataset_builder import \
        WORLDS

    if FLAGS.config not in WORLDS:
        raise app.UsageError(f'--config: one of {sorted(WORLDS)}, got {FLAGS.config!r}')
    dataset = f'synthetic_person_search/{FLAGS.config}'
    world = world_lib.make_world(WORLDS[FLAGS.config])
    if FLAGS.gallery_size not in world.spec.gallery_sizes:
        raise app.UsageError(f'--gallery_size: {dataset} defines {world.spec.gallery_sizes}')
    tfds.builder(dataset, data_dir=FLAGS.data_dir).download_and_prepare()
    protocol = protocol_lib.load_protocol(dataset, FLAGS.data_dir)

    census = look_alikes(world, FLAGS.gallery_size)
    kinds = collections.Counter(k for c in census for k in c['one_attribute'])
    with_twin = sum(bool(c['one_attribute']) for c in census)
    print(f'{dataset}, gallery {FLAGS.gallery_size}: {with_twin} of {len(census)} queries have a '
          f'gallery person dressed the same but for one attribute (by attribute: '
          f'{dict(sorted(kinds.items()))}); {sum(c["same_clothes"] > 0 for c in census)} have '
          f'one dressed exactly the same.')

    boxes = protocol.queries.boxes
    subsets = query_subsets(census, boxes[:, 3] - boxes[:, 1])
    grid = tuple(int(v) for v in FLAGS.template_grid)
    template = predictions_lib.Predictions(**colour_template_predictions(
        dataset, FLAGS.data_dir, grid))
    if FLAGS.write_template:
        predictions_lib.write_predictions(FLAGS.write_template, template)
    results = {f'colour template {grid[0]}x{grid[1]} (GT boxes)':
               breakdown(*per_query_metrics(protocol, template, FLAGS.gallery_size), subsets)}
    for path in FLAGS.predictions:
        results[os.path.basename(path)] = breakdown(*per_query_metrics(
            protocol, predictions_lib.read_predictions(path), FLAGS.gallery_size), subsets)
    print('search mAP / top-1 by query subset (queries); h = query person height, pixels')
    print(markdown_table(results))
    if FLAGS.output_json:
        with open(FLAGS.output_json, 'w') as f:
            json.dump({'dataset': dataset, 'gallery_size': FLAGS.gallery_size,
                       'look_alikes': census, 'results': results}, f, indent=2)


if __name__ == '__main__':
    app.run(main)
