"""Custom person-search data in COCO-style JSON, written in the shared ps_tf schema.

For users' own data: point `--manual_dir` at a folder holding `annotations/train.json` and/or
`annotations/test.json` plus `images/`. The JSON format is COCO's (`images`, `annotations` with
`bbox` = [x, y, width, height] pixels) with optional per-annotation `person_id`, `iscrowd` /
`ignore` and per-image `camera_id`, and an optional `queries` list in test.json (see
`annotations.py`).

Splits: `train` (train.json), `gallery` (every test.json image) and `query` (listed or derived
test queries, PRW-style: each is searched in all other gallery images; see `examples.py`). A
split whose JSON is absent is not built; the query split is left out when there is no query.
"""

from __future__ import annotations

from typing import Any, Iterator

import tensorflow_datasets as tfds
from absl import logging

from tfds_builders import build_checks, schema
from tfds_builders.coco_person_search import annotations, examples

_DATASET = 'coco_person_search'


class Builder(tfds.core.GeneratorBasedBuilder):
    """Person-search data from COCO-style JSON files."""

    VERSION = tfds.core.Version('1.0.0')
    RELEASE_NOTES = {'1.0.0': 'Initial release.'}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Your own data; nothing to download. Pass as --manual_dir a folder laid out as:

  <manual_dir>/
    annotations/
      train.json        # optional: the `train` split
      test.json         # optional: the `gallery` and `query` splits (at least one of the two)
    images/             # every `file_name` of the JSON files is relative to this folder
      ...

Each JSON file (COCO style; bbox = [x, y, width, height] in pixels, inside the image):
  {"images": [{"id": 1, "file_name": "cam1/0001.jpg", "camera_id": 1}],
   "annotations": [{"id": 1, "image_id": 1, "bbox": [10, 20, 50, 120], "person_id": 3},
                   {"id": 2, "image_id": 1, "bbox": [90, 15, 40, 100], "iscrowd": 1}],
   "queries": [1]}
Optional keys: image width/height (checked) and camera_id (else -1); annotation person_id
(absent/null/-1 = no identity), iscrowd/ignore (ignore region), category_id with "categories"
(only the "person" category is read); test.json "queries" = annotation ids, else every labelled
person whose person_id is in another test image becomes a query.
"""

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=schema.features(),
            homepage='https://cocodataset.org/#format-data',
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = build_checks.require_paths(
            dl_manager.manual_dir, [annotations.ANNOTATION_DIR, annotations.IMAGE_DIR], _DATASET,
            self.MANUAL_DOWNLOAD_INSTRUCTIONS)
        image_root = root / annotations.IMAGE_DIR
        train_json = root / annotations.ANNOTATION_DIR / 'train.json'
        test_json = root / annotations.ANNOTATION_DIR / 'test.json'
        if not train_json.exists() and not test_json.exists():
            raise FileNotFoundError(f'{_DATASET}: neither {train_json} nor {test_json} exists. '
                                    f'Expected:\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}')
        splits = {}
        if train_json.exists():
            train = annotations.read_split(train_json, image_root, allow_queries=False)
            splits['train'] = self._generate_examples('train', examples.image_examples(
                train.images))
        if test_json.exists():
            test = annotations.read_split(test_json, image_root, allow_queries=True)
            splits['gallery'] = self._generate_examples('gallery', examples.image_examples(
                test.images))
            queries = examples.select_queries(test)
            if queries:
                splits['query'] = self._generate_examples('query', examples.query_examples(
                    test.images, queries))
            else:
                logging.warning('%s: no query (no identity appears in two test images); the '
                                '`query` split is not built', test_json)
        return splits

    def _generate_examples(self, split: str,
                           split_examples: Iterator[tuple[str, dict[str, Any]]]):
        yield from build_checks.count_examples(_DATASET, split, split_examples)
