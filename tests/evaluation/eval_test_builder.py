"""A small TFDS builder writing the shared schema, for the protocol-loading and CLI tests:
a PRW-style config (cameras, no gallery lists) and a CUHK-style one (gallery lists with a duplicate
entry). Lives in a helper module (not a test file) so that TFDS can locate its code."""

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import schema

# (file name, camera, protocol index, people: (x1, y1, x2, y2, person id, ignore))
FRAMES = [
    ('c1s1_000002.jpg', 1, 2, [(-1.703, 295.5756, 72.9406, 633.8045, 5, False)]),
    ('c2s1_000001.jpg', 2, 1, [(10.5, 20.25, 40.75, 90.0, 5, False),
                               (50.0, 10.0, 70.0, 60.0, -1, False),
                               (0.0, 0.0, 200.0, 300.0, -1, True)]),
    ('c1s1_000000.jpg', 1, 0, [(1.0, 2.0, 11.0, 22.0, 8, False)]),
    ('c3s1_000003.jpg', 3, 3, []),
]
HEIGHT, WIDTH = 700, 400


class EvalTestPersonSearch(tfds.core.GeneratorBasedBuilder):
    """Gallery + query splits in the shared schema; `cuhk_style` adds gallery lists."""

    VERSION = tfds.core.Version('1.0.0')
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name='prw_style'),
                       tfds.core.BuilderConfig(name='cuhk_style')]

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=schema.features())

    def _split_generators(self, dl_manager):
        return {'gallery': self._generate_examples('gallery'),
                'query': self._generate_examples('query')}

    def _generate_examples(self, split):
        yield from self._gallery() if split == 'gallery' else self._queries()

    def _example(self, name, camera, index, people, query):
        boxes = np.asarray([p[:4] for p in people], np.float64).reshape(-1, 4)
        return {
            'image': np.zeros((8, 8, 3), np.uint8),
            'image/filename': name,
            'protocol_index': index,
            'camera_id': camera,
            'objects': schema.encode_objects(boxes, [p[4] for p in people],
                                             [p[5] for p in people], HEIGHT, WIDTH, name),
            'query': query,
        }

    def _gallery(self):
        for name, camera, index, people in FRAMES:
            yield name, self._example(name, camera, index, people, schema.empty_query())

    def _queries(self):
        # Query 0: person 5 in c2s1_000001; query 1: person 8 in c1s1_000000 (stored in reverse).
        cuhk = self.builder_config.name == 'cuhk_style'
        specs = [
            (1, 'q1', 2, 8, {2: [schema.GalleryEntry(3), schema.GalleryEntry(1)],
                             3: [schema.GalleryEntry(3), schema.GalleryEntry(1),
                                 schema.GalleryEntry(2)]} if cuhk else {}),
            (0, 'q0', 1, 5, {2: [schema.GalleryEntry(2, FRAMES[0][3][0][:4]),
                                 schema.GalleryEntry(3)],
                             3: [schema.GalleryEntry(2, FRAMES[0][3][0][:4]),
                                 schema.GalleryEntry(2, FRAMES[0][3][0][:4]),
                                 schema.GalleryEntry(0)]} if cuhk else {}),
        ]
        for index, key, frame, person, galleries in specs:
            name, camera, _, people = FRAMES[frame]
            box = [p for p in people if p[4] == person][0][:4]
            query = schema.encode_query(box, person, galleries, HEIGHT, WIDTH, key)
            yield key, self._example(name, camera, index, people, query)
