"""CUHK-SYSU person search (Xiao et al., CVPR 2017), read from the original release.

Splits, in the shared schema (`tfds_builders/schema.py`):
- `train`: 11,206 images (`Images.mat` minus `pool.mat`, sorted by name as SeqNet does),
  55,272 boxes, person ids 1..5532 (the i-th `Train.mat` identity is i + 1).
- `gallery`: the 6,978 `pool.mat` images in pool order, 40,871 boxes, person ids 10001..12900
  (the i-th TestG50 query's person is 10000 + i + 1; see `annotations.py`).
- `query`: the 2,900 TestG queries in TestG order (example key = query index), each with its scene
  image and all its objects, `query/box` and the gallery lists of every `TestG{N}.mat` present.
  Gallery entries are gallery `protocol_index`es, kept exactly (duplicates and self-entries too).

Boxes: `objects/box` = x1, y1, x2, y2 = x, y, x + w, y + h from the release's (x, y, w, h)
integers (widened to int64 first); boxes with w <= 0 or h <= 0 are dropped. `camera_id` = -1.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

from absl import logging
from etils import epath
import tensorflow_datasets as tfds

from tfds_builders import build_checks, release_files
from tfds_builders import schema
from tfds_builders.cuhk_sysu import annotations
from tfds_builders.cuhk_sysu import release

_NAME = 'cuhk_sysu'
#: Folder names the release extracts to, accepted one level below `manual_dir`.
_ROOT_NAMES = ('cuhk_sysu', 'CUHK-SYSU', 'dataset')
_REQUIRED = (release.IMAGE_DIR, release.IMAGES_MAT, release.POOL_MAT, release.TRAIN_MAT,
             f'{release.PROTOCOL_DIR}/TestG{release.LABEL_GALLERY_SIZE}.mat')
#: Published counts (docs/datasets.md#cuhk-sysu-counts), checked after each split is written.
_EXPECTED = {
    'train': {'images': 11206, 'boxes': 55272, 'identities': 5532,
              'images_without_people': 0},
    'gallery': {'images': 6978, 'boxes': 40871, 'identities': 2900,
                'images_without_people': 0},
    'query': {'images': 2900},
}

_TREE = """\
<manual_dir>/                   (or <manual_dir>/cuhk_sysu/, CUHK-SYSU/ or dataset/)
  Image/SSM/s1.jpg ... s18184.jpg
  annotation/
    Images.mat
    pool.mat
    test/train_test/
      Train.mat
      TestG50.mat  (required; TestG100, 500, 1000, 2000, 4000 used when present)
"""


def find_root(manual_dir: epath.PathLike) -> epath.Path:
    """`manual_dir` itself, or the release folder one level below it."""
    return release_files.find_release_root(manual_dir, release.IMAGES_MAT, _ROOT_NAMES)


class Builder(tfds.core.GeneratorBasedBuilder):
    """CUHK-SYSU from the original release (manual download)."""

    VERSION = tfds.core.Version('1.0.0')
    RELEASE_NOTES = {'1.0.0': 'Initial release: train, gallery and query splits, SeqNet labels.'}
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download the original CUHK-SYSU release `cuhk_sysu.tar.gz` (Google Drive id
1z3LsFrJTUeEX3-XjSEJMOBrslxD2T5af; the older OIM `dataset.zip` has the same contents), extract
it and pass the folder as `--manual_dir`. Expected tree:

{_TREE}
Re-hosted copies in the JDE/FairMOT format (images/ + labels_with_ids/) or cropped re-id images
are not the original release and will not load.
"""

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=__doc__,
            features=schema.features(),
            homepage='http://www.ee.cuhk.edu.hk/~xgwang/PS/dataset.html',
            citation='@inproceedings{xiaoli2017joint, title={Joint Detection and Identification '
                     'Feature Learning for Person Search}, author={Xiao, Tong and Li, Shuang and '
                     'Wang, Bochao and Lin, Liang and Wang, Xiaogang}, booktitle={CVPR}, '
                     'year={2017}}',
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
        root = build_checks.require_paths(find_root(dl_manager.manual_dir), _REQUIRED, _NAME,
                                          _TREE)
        images = release.read_images(root / release.IMAGES_MAT)
        pool = release.read_pool(root / release.POOL_MAT)
        pool_index = {name: i for i, name in enumerate(pool)}
        boxes = annotations.valid_boxes(images)
        train_names, gallery_names = annotations.split_names([im.name for im in images], pool)

        files = release.protocol_files(root)
        missing = [n for n in release.STANDARD_GALLERY_SIZES if n not in files]
        if missing:
            logging.warning('cuhk_sysu: no TestG%s.mat in %s; the query split holds the other '
                            'gallery sizes only.', missing, root / release.PROTOCOL_DIR)
        label_protocol = release.read_protocol(files[release.LABEL_GALLERY_SIZE], pool_index)
        # Only the compact gallery lists are kept per file: TestG4000 alone has 11.6 M entries.
        protocols = {release.LABEL_GALLERY_SIZE: label_protocol}
        for size, path in files.items():
            if size != release.LABEL_GALLERY_SIZE:
                protocols[size] = release.read_protocol(path, pool_index, size)
                release.check_same_queries(label_protocol, protocols[size], path)
        protocols = dict(sorted(protocols.items()))

        train = annotations.label_images(
            train_names, boxes,
            annotations.train_labels(release.read_train(root / release.TRAIN_MAT)), 'train')
        gallery = annotations.label_images(
            gallery_names, boxes, annotations.test_labels(label_protocol, pool), 'gallery')
        image_dir = root / release.IMAGE_DIR
        return {
            split: build_checks.count_examples(_NAME, split, self._generate_examples(
                split, image_dir, labelled, protocols), _EXPECTED[split])
            for split, labelled in (('train', train), ('gallery', gallery), ('query', gallery))
        }

    def _generate_examples(self, split: str, image_dir: epath.Path,
                           images: Sequence[annotations.LabelledImage],
                           protocols: dict[int, release.Protocol]
                           ) -> Iterator[tuple[Any, dict[str, Any]]]:
        """Yields (key, example) in protocol order.

        Args:
            split: 'train', 'gallery' or 'query'.
            image_dir: the release's `Image/SSM` folder.
            images: the split's labelled images (for 'query': the gallery's, in pool order).
            protocols: gallery size -> TestG file, for the query split.
        """
        if split != 'query':
            for index, image in enumerate(images):
                yield image.name, self._example(image_dir, image, index)
            return
        by_name = {image.name: image for image in images}
        reference = protocols[release.LABEL_GALLERY_SIZE]
        for q, query in enumerate(reference.queries):
            # protocol_index of a query example = the query's index in TestG order.
            example = self._example(image_dir, by_name[query.image_name], q)
            galleries = {
                size: [schema.GalleryEntry(i, None if box is None else
                                           tuple(schema.xywh_to_xyxy(box).tolist()))
                       for i, box in protocol.gallery(q)]
                for size, protocol in protocols.items()}
            height, width = release_files.image_size(image_dir / query.image_name)
            example['query'] = schema.encode_query(
                schema.xywh_to_xyxy(query.box_xywh), annotations.test_person_id(q), galleries,
                height, width, where=f'cuhk_sysu query {q} ({query.image_name})')
            yield q, example

    @staticmethod
    def _example(image_dir: epath.Path, image: annotations.LabelledImage,
                 index: int) -> dict[str, Any]:
        path = image_dir / image.name
        if not path.exists():
            raise FileNotFoundError(f'{path}: image listed in {release.IMAGES_MAT} not found')
        height, width = release_files.image_size(path)
        return {
            'image': path,
            'image/filename': image.name,
            'protocol_index': index,
            'camera_id': schema.UNKNOWN_CAMERA,
            'objects': schema.encode_objects(schema.xywh_to_xyxy(image.boxes_xywh),
                                             image.person_ids, None, height, width,
                                             where=f'cuhk_sysu {image.name}'),
            'query': schema.empty_query(),
        }
