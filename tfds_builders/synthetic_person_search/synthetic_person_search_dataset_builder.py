"""synthetic_person_search: procedurally drawn person-search scenes, the embedded default dataset.

No download: every image is drawn from a seeded plan (`world.py`, `render.py`), so the same
config builds identical examples on any machine. Splits follow CUHK-SYSU: `train` (training
identities), `gallery` (the test pool) and `query` (one query per test identity, with gallery lists
of every size in `gallery_sizes`: every other image with the person first, then distractors).
Identities are disjoint between train and test.

Configs:
- `default`: a meaningful CPU training run (400 train / 60 test identities, ~1,200 train and ~200
  gallery images of 256-352 px high, gallery sizes 50 and 100), domain-randomised: 10 cameras of
  domain a's styles and procedural backgrounds, every image drawn in a random rendering style and
  photographed with random lighting, tone, blur, noise and compression, people from 30 px tall to
  most of the frame's height, in random poses and proportions (`world.WorldSpec.randomize`);
- `plain`: the 1.x `default`, drawn in one flat style with mild daylight casts (6 cameras);
- `tiny`: a handful of 128x96 images, for tests;
- `detection_only`: 400 training images of other cameras in the same domain, boxes without
  identities and with crowd ignore regions (like MOT17Det / WIDER for the paper's aggregation);
- `domain_b`: a second domain (night, station and mall cameras, darker bluish lighting, wider
  images, smaller people, more crowds) for cross-dataset experiments.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from tfds_builders import build_checks, schema
from tfds_builders.synthetic_person_search import render
from tfds_builders.synthetic_person_search import world as world_lib

JPEG_QUALITY = 90

WORLDS = {
    # 400 training identities: stage 2 generalises to unseen people with many identities (at 100,
    # re-ID with ground-truth boxes reached mAP 0.46 at gallery 100; at 400, 0.66, same steps).
    'default': world_lib.WorldSpec(
        seed=0, num_cameras=10, randomize=True, train_identities=400,
        image_sizes=((384, 288), (352, 288), (320, 256), (448, 256), (416, 320), (288, 352)),
        person_height_frac=(0.35, 0.95), max_labelled_per_image=3, passers_by=(0, 5),
        occlusion_prob=0.35, crowd_prob=0.15),
    # The 1.x `default`: one flat rendering style, mild daylight casts.
    'plain': world_lib.WorldSpec(seed=0, train_identities=400),
    'tiny': world_lib.WorldSpec(
        seed=1, num_cameras=2, image_sizes=((128, 96),), person_height_frac=(0.6, 0.8),
        min_person_height=24, train_identities=4, test_identities=3, train_appearances=(2, 3),
        test_appearances=(2, 2), passers_by=(0, 1), train_background_images=1,
        test_background_images=2, gallery_sizes=(3, 5), occlusion_prob=0.3, crowd_prob=0.2),
    'detection_only': world_lib.WorldSpec(
        seed=2, train_identities=0, test_identities=0, train_background_images=400,
        test_background_images=0, passers_by=(1, 5), crowd_prob=0.25),
    'domain_b': world_lib.WorldSpec(
        seed=3, domain='b', num_cameras=4, image_sizes=((416, 256), (448, 256)),
        person_height_frac=(0.35, 0.55), max_labelled_per_image=3, passers_by=(1, 4),
        crowd_prob=0.3),
}


@dataclasses.dataclass(eq=False)
class SyntheticConfig(tfds.core.BuilderConfig):
    world: world_lib.WorldSpec = WORLDS['default']


def _encode_jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format='JPEG', quality=JPEG_QUALITY)
    return buffer.getvalue()


class Builder(tfds.core.GeneratorBasedBuilder):
    """Synthetic person-search scenes in the shared ps_tf schema."""

    VERSION = tfds.core.Version('2.0.0')
    RELEASE_NOTES = {'1.0.0': 'First release.',
                     '1.1.0': '`default`: 400 training identities (was 100).',
                     '2.0.0': '`default` is domain-randomised; the 1.x `default` is `plain`.'}
    BUILDER_CONFIGS = [
        SyntheticConfig(name='default',
                        description='CPU-scale person search, domain a, domain-randomised.',
                        world=WORLDS['default']),
        SyntheticConfig(name='plain', description='The 1.x default: domain a in one style.',
                        world=WORLDS['plain']),
        SyntheticConfig(name='tiny', description='A handful of small images, for tests.',
                        world=WORLDS['tiny']),
        SyntheticConfig(name='detection_only', description='Boxes without identities.',
                        world=WORLDS['detection_only']),
        SyntheticConfig(name='domain_b', description='A second domain for cross-dataset tests.',
                        world=WORLDS['domain_b']),
    ]
    DEFAULT_CONFIG_NAME = 'default'

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=schema.features(),
            description=__doc__,
        )

    @property
    def _world(self) -> world_lib.World:
        if not hasattr(self, '_world_cache'):
            self._world_cache = world_lib.make_world(self.builder_config.world)
        return self._world_cache

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # Nothing to download: the data is drawn.
        splits = {'train': self._generate_examples('train')}
        if self._world.spec.has_identities:
            splits['gallery'] = self._generate_examples('gallery')
            splits['query'] = self._generate_examples('query')
        return splits

    def _generate_examples(self, split: str):
        examples = self._queries() if split == 'query' else self._images(split)
        name = f'synthetic_person_search/{self.builder_config.name}'
        yield from build_checks.count_examples(name, split, examples)

    def _images(self, split: str):
        world = self._world
        plans = world.train_images if split == 'train' else world.test_images
        for plan in plans:
            pixels, boxes, person_ids, ignore = render.render_image(world, plan)
            yield plan.filename, self._example(plan, pixels, boxes, person_ids, ignore,
                                               schema.empty_query(), plan.index)

    def _queries(self):
        world = self._world

        def box_of(identity: int, image_index: int) -> tuple[float, ...]:
            _, boxes, person_ids, _ = render.render_image(world, world.test_images[image_index])
            return tuple(boxes[person_ids == identity][0])

        for query in world.queries:
            plan = world.test_images[query.image_index]
            pixels, boxes, person_ids, ignore = render.render_image(world, plan)
            height, width = pixels.shape[:2]
            positives = {i: box_of(query.identity, i) for i in
                         {i for g in query.galleries.values() for i in g
                          if query.identity in world.test_images[i].identities}}
            galleries = {size: [schema.GalleryEntry(i, positives.get(i)) for i in entries]
                         for size, entries in query.galleries.items()}
            query_feature = schema.encode_query(
                boxes[person_ids == query.identity][0], query.identity, galleries, height, width,
                where=f'query {query.index}')
            yield f'query_{query.index:05d}', self._example(plan, pixels, boxes, person_ids,
                                                            ignore, query_feature, query.index)

    def _example(self, plan: world_lib.ImagePlan, pixels: np.ndarray, boxes: np.ndarray,
                 person_ids: np.ndarray, ignore: np.ndarray, query: dict,
                 protocol_index: int) -> dict:
        height, width = pixels.shape[:2]
        return {
            'image': _encode_jpeg(pixels),
            'image/filename': plan.filename,
            'protocol_index': protocol_index,
            'camera_id': plan.camera + 1,   # 1-based, as in the file name (c1, c2, ...)
            'objects': schema.encode_objects(boxes, person_ids, ignore, height, width,
                                             where=plan.filename),
            'query': query,
        }
