"""WIDER Pedestrian 2019 (WIDER Face & Person Challenge 2019, track 2) in the shared ps_tf schema.

Detection-only data (docs/datasets.md#wider-pedestrian-2019): surveillance (`sur*`) and driving
(`ad*`) images with pedestrian boxes (riders included, single class) and ignore regions, no
identities, no cameras.

Splits: `train`, `val` (5,000 images, 20,052 boxes) and, only when `Annotations/test_list.txt`
exists, `test` (unlabelled). Every image of `<split>_list.txt` is an example, in list order;
images without pedestrians (absent from `<split>_bbox.txt`) are kept with no objects. Corrupt
JPEGs (the release's `sur03954.jpg`) are skipped with a warning and counted. Boxes are
(x, y, w, h) pixels in the files and x1, y1, x2, y2 = x, y, x + w, y + h in `objects/box`.
"""

from __future__ import annotations

import tensorflow_datasets as tfds
from etils import epath

from tfds_builders import build_checks, schema
from tfds_builders.wider_pedestrian import release

_DATASET = 'wider_pedestrian'
# docs/datasets.md#wider-pedestrian-2019 [V, Pedestron val.json]; train counts are unknown, so
# nothing to compare.
EXPECTED_COUNTS = {'val': {'images': 5000, 'boxes': 20052}}


class Builder(tfds.core.GeneratorBasedBuilder):
    """WIDER Pedestrian 2019 images with pedestrian boxes and ignore regions."""

    VERSION = tfds.core.Version('1.0.0')
    RELEASE_NOTES = {'1.0.0': 'Initial release.'}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download the WIDER Face & Person Challenge 2019 pedestrian-detection (track 2) data from its
CodaLab competition (https://competitions.codalab.org/competitions/20132, "Participate" > "Get
Data"; registration needed), unpack the archives into one folder and pass it as --manual_dir:

  <manual_dir>/                         # e.g. WIDER_pd2019/
    Annotations/
      train_list.txt  train_bbox.txt  train_ignore.txt
      val_list.txt    val_bbox.txt    val_ignore.txt
      test_list.txt                     # optional: builds a `test` split without boxes
    sur_train/sur00001.jpg ...
    ad_train/ad_01/ad00001.jpg ...  ad_train/ad_02/...  ad_train/ad_03/...
    val_data/ad00001.jpg ... sur00001.jpg ...
    test_data/ (or test_images/, test/) # only with test_list.txt

*_list.txt: one image name per line. *_bbox.txt / *_ignore.txt: `name x y w h [x y w h ...]`
(pixels, no class column). Pedestron's collapsed `train_images/` layout is not accepted.
"""

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=schema.features(),
            homepage='https://competitions.codalab.org/competitions/20132',
            citation=('@misc{wider2019, title={{WIDER} Face and Pedestrian Challenge 2019}, '
                      'howpublished={\\url{https://competitions.codalab.org/competitions/20132}}, '
                      'year={2019}}'),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        required = [f'{release.ANNOTATIONS}/{split}_{kind}.txt'
                    for split in ('train', 'val') for kind in ('list', 'bbox', 'ignore')]
        required += [*release.TRAIN_IMAGE_FOLDERS, *release.VAL_IMAGE_FOLDERS]
        root = build_checks.require_paths(dl_manager.manual_dir, required, _DATASET,
                                          self.MANUAL_DOWNLOAD_INSTRUCTIONS)
        splits = {
            'train': self._generate_examples(root, 'train', release.TRAIN_IMAGE_FOLDERS),
            'val': self._generate_examples(root, 'val', release.VAL_IMAGE_FOLDERS),
        }
        if release.list_path(root, 'test', 'list').exists():
            splits['test'] = self._generate_examples(root, 'test', _test_folder(root))
        return splits

    def _generate_examples(self, root: epath.Path, split: str, image_folders: tuple[str, ...]):
        examples = release.split_examples(root, split, image_folders)
        yield from build_checks.count_examples(_DATASET, split, examples,
                                               EXPECTED_COUNTS.get(split))


def _test_folder(root: epath.Path) -> tuple[str]:
    """The test image folder ([U] in the release notes): the first candidate that exists."""
    for folder in release.TEST_IMAGE_FOLDERS:
        if (root / folder).is_dir():
            return (folder,)
    raise FileNotFoundError(f'{release.list_path(root, "test", "list")} exists but none of the '
                            f'test image folders {release.TEST_IMAGE_FOLDERS} is in {root}')
