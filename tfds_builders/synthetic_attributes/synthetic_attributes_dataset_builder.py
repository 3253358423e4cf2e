"""synthetic_attributes: person crops labelled with clothing attributes, for backbone pretraining.

The stand-in for ImageNet that can be built without a download (`crops.py`): a ResNet-50 that
learns to name the colours, patterns, builds and accessories of drawn people under any lighting
and rendering style starts the detector with features that keep appearance, where a trunk trained
from scratch for detection alone keeps little (`ps_tf/training/pretraining.py`).

Features: `image` (128 x 64 JPEG), `person` (1 if the crop shows a person, 0 for background), and
one class index per attribute (`crops.ATTRIBUTES`; -1 when there is no person). Splits `train` and
`validation` are different example streams. No identity of the `synthetic_person_search` worlds
appears: their clothing combinations are excluded.

Configs: `default` (16,000 training crops, about a minute and a half to build on 2 cores) and
`tiny` (for tests).
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from tfds_builders.synthetic_attributes import crops
from tfds_builders.synthetic_person_search import synthetic_person_search_dataset_builder as ssb

JPEG_QUALITY = 90
SPLIT_SEEDS = {'train': 100, 'validation': 101}


@dataclasses.dataclass(eq=False)
class AttributesConfig(tfds.core.BuilderConfig):
    train_examples: int = 16000
    validation_examples: int = 1000


class Builder(tfds.core.GeneratorBasedBuilder):
    """Labelled person crops drawn by the synthetic person-search renderer."""

    VERSION = tfds.core.Version('1.0.0')
    RELEASE_NOTES = {'1.0.0': 'First release.'}
    BUILDER_CONFIGS = [
        AttributesConfig(name='default', description='16,000 training crops.'),
        AttributesConfig(name='tiny', description='A handful of crops, for tests.',
                         train_examples=48, validation_examples=16),
    ]
    DEFAULT_CONFIG_NAME = 'default'

    def _info(self) -> tfds.core.DatasetInfo:
        labels = {name: tfds.features.Scalar(np.int64) for name in crops.ATTRIBUTES}
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                'image': tfds.features.Image(
                    shape=(crops.CROP_HEIGHT, crops.CROP_WIDTH, 3), encoding_format='jpeg'),
                'person': tfds.features.Scalar(np.int64),
                **labels,
            }),
            description=__doc__,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # Nothing to download: the data is drawn.
        excluded = crops.excluded_combinations(ssb.WORLDS.values())
        config = self.builder_config
        return {'train': self._generate_examples('train', config.train_examples, excluded),
                'validation': self._generate_examples('validation', config.validation_examples,
                                                      excluded)}

    def _generate_examples(self, split: str, count: int, excluded: frozenset):
        for index in range(count):
            pixels, appearance = crops.render_crop(SPLIT_SEEDS[split], index, excluded)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format='JPEG', quality=JPEG_QUALITY)
            yield f'{split}_{index:06d}', {
                'image': buffer.getvalue(),
                'person': int(appearance is not None),
                **crops.attribute_labels(appearance),
            }
