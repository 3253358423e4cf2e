"""MOT17Det as person-detection data in the shared ps_tf schema (docs/datasets.md#mot17det).

Splits:
- `train`: every frame of the 7 labelled sequences (5,316 frames). Positives are
  `flag == 1 & class == 1 & visibility >= min_visibility`; classes 2, 7, 8, 12 and class-1 rows
  failing the flag/visibility test are ignore regions; other classes are dropped. No identities.
- `test`: every frame of the 7 unlabelled sequences (about 5,919 frames), without objects.

Configs (they change what is written, so they are builder configs):
- `vis0` (default): no visibility threshold (FairMOT, ByteTrack).
- `vis25`: positives need visibility >= 0.25 (Tracktor's detector training); the rest of the
  class-1 boxes become ignore regions.

`camera_id` is the sequence number (2 for MOT17-02). Boxes are used as annotated, without the
devkit's "1-based" -1 shift (see `release.py`). Image sizes come from seqinfo.ini.
"""

from __future__ import annotations

import dataclasses

import tensorflow_datasets as tfds
from etils import epath

from tfds_builders import build_checks, schema
from tfds_builders.mot17det import release

_DATASET = 'mot17det'
# docs/datasets.md#mot17det-counts: train is [C, several sources]; test is [U] (approximate), so
# only warns.
EXPECTED_COUNTS = {'train': {'images': 5316}, 'test': {'images': 5919}}


@dataclasses.dataclass(eq=False)
class MotConfig(tfds.core.BuilderConfig):
    """Which class-1 rows count as positives.

    Attributes:
        min_visibility: visibility (gt.txt column 9, 0..1) a flagged pedestrian needs.
    """
    min_visibility: float = 0.0


class Builder(tfds.core.GeneratorBasedBuilder):
    """MOT17Det frames with pedestrian boxes and ignore regions."""

    VERSION = tfds.core.Version('1.0.0')
    RELEASE_NOTES = {'1.0.0': 'Initial release.'}
    BUILDER_CONFIGS = [
        MotConfig(name='vis0', description='Positives: flag 1, class 1, any visibility.',
                  min_visibility=0.0),
        MotConfig(name='vis25', description='Positives: flag 1, class 1, visibility >= 0.25.',
                  min_visibility=0.25),
    ]
    DEFAULT_CONFIG_NAME = 'vis0'
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download MOT17Det.zip ("MOT17Det" images + "MOT17Det labels") from
https://motchallenge.net/data/MOT17Det/ (registration needed), unpack it and pass the folder that
holds train/ and test/ as --manual_dir:

  <manual_dir>/                       # e.g. MOT17Det/
    train/MOT17-02/ MOT17-04/ MOT17-05/ MOT17-09/ MOT17-10/ MOT17-11/ MOT17-13/
    test/MOT17-01/ MOT17-03/ MOT17-06/ MOT17-07/ MOT17-08/ MOT17-12/ MOT17-14/
    each sequence:
      seqinfo.ini            [Sequence] name, imDir, seqLength, imWidth, imHeight (imExt, ...)
      img1/000001.jpg ...    frames 1..seqLength
      gt/gt.txt              train only: frame,id,left,top,width,height,flag,class,visibility
      det/det.txt            optional, not read

The MOT17 *tracking* release (MOT17-02-DPM/-FRCNN/-SDP copies) is not accepted.
"""

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=schema.features(),
            homepage='https://motchallenge.net/data/MOT17Det/',
            citation=('@article{MOT16, title={{MOT16}: A Benchmark for Multi-Object Tracking}, '
                      'author={Milan, A. and Leal-Taix{\\\'e}, L. and Reid, I. and Roth, S. and '
                      'Schindler, K.}, journal={arXiv:1603.00831}, year={2016}}'),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = build_checks.require_paths(dl_manager.manual_dir, ['train', 'test'], _DATASET,
                                          self.MANUAL_DOWNLOAD_INSTRUCTIONS)
        return {
            'train': self._generate_examples(root / 'train', 'train', labelled=True),
            'test': self._generate_examples(root / 'test', 'test', labelled=False),
        }

    def _generate_examples(self, split_dir: epath.Path, split: str, labelled: bool):
        examples = release.split_examples(split_dir, labelled,
                                          min_visibility=self.builder_config.min_visibility)
        yield from build_checks.count_examples(_DATASET, split, examples,
                                               EXPECTED_COUNTS[split])
