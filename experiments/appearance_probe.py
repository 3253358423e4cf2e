"""How much appearance a shared trunk keeps, before any re-ID training: search with ground-truth
boxes, each embedded by its ROI-aligned shared map alone (no re-ID branch, nothing trained).

    python experiments/appearance_probe.py \
        --trunks=random=none,pretrained=runs/r_pre/pretrain/resnet50.h5,detector=runs/r_pre \
        --dataset=synthetic_person_search/default

A trunk is 'none' (random initialisation), a ResNet-50 weights file (`--weights` takes it, e.g.
the pretraining stage's) or a stage-1 run directory (its latest checkpoint). Each box's shared
map (C3 for J3) is ROI-aligned as the re-ID branch's input is, averaged over its upper and lower
half, and the two halves concatenated and L2-normalised: an embedding that says how well the
trunk's features alone tell people apart, the floor that the re-ID branch builds on. It is the
measurement behind issue 17's first deliverable: a trunk trained for detection alone from scratch
keeps little appearance, and pretraining on clothing attributes should keep more.
"""

from __future__ import annotations

import json

import tensorflow as tf
from absl import app, flags

import tfds_builders  # noqa: F401  (registers the ps_tf datasets)
from ps_tf import evaluation
from ps_tf.evaluation import inference
from ps_tf.models.backbone import STAGE_CHANNELS, shared_level, split_resnet50
from ps_tf.models.joint import PersonSearchModel
from ps_tf.models.loading import restore_detector
from ps_tf.models.reid import roi_size
from ps_tf.ops.geometry import roi_align

flags.DEFINE_list('trunks', None, 'name=none|weights file|stage-1 run dir,...')
flags.DEFINE_string('dataset', 'synthetic_person_search/default', 'Dataset with gallery/query.')
flags.DEFINE_string('variant', 'J3', 'Which shared map: J2 (C2), J3 (C3) or J4 (C4).')
flags.DEFINE_integer('image_size', 320, 'Model input side (the synthetic preset\'s).')
flags.DEFINE_integer('gallery_size', 100, 'CUHK-SYSU-style gallery size.')
flags.DEFINE_string('output_json', None, 'Write the rows here too.')
FLAGS = flags.FLAGS


class TrunkProbe(PersonSearchModel):
    """Embeds boxes by their ROI-aligned shared map, upper and lower half averaged."""

    def __init__(self, trunk: tf.keras.Model, variant: str):
        super().__init__(name='trunk_probe')
        self.trunk = trunk
        self.variant = variant
        self.level = shared_level(variant)
        self.embedding_dim = 2 * STAGE_CHANNELS[self.level]

    def region_source(self, images, detections=None):
        return tf.cast(self.trunk(images, training=False)[f'C{self.level}'], tf.float32)

    def embed_regions(self, source, boxes_yxyx, box_image_index, image_size):
        pooled = roi_align(source, boxes_yxyx, box_image_index, image_size,
                           roi_size(self.variant))
        half = pooled.shape[1] // 2
        halves = tf.concat([tf.reduce_mean(pooled[:, :half], [1, 2]),
                            tf.reduce_mean(pooled[:, half:], [1, 2])], axis=-1)
        return tf.math.l2_normalize(halves, axis=-1)


def load_trunk(spec: str, variant: str) -> tf.keras.Model:
    if tf.io.gfile.isdir(spec):
        detector, _, _ = restore_detector(spec, variant=variant, precision='float32')
        return detector.trunk
    trunk, _ = split_resnet50(variant, weights=spec)
    return trunk


def main(argv):
    del argv
    if not FLAGS.trunks:
        raise app.UsageError('--trunks is required')
    protocol = evaluation.load_protocol(FLAGS.dataset)
    settings = evaluation.EvalSettings(gallery_sizes=[FLAGS.gallery_size])
    rows = []
    for item in FLAGS.trunks:
        name, _, spec = item.partition('=')
        probe = TrunkProbe(load_trunk(spec, FLAGS.variant), FLAGS.variant)
        arrays = inference.predict_dataset(probe, FLAGS.dataset, FLAGS.image_size,
                                           use_gt_boxes=True)
        row = evaluation.evaluate_predictions(protocol, evaluation.Predictions(**arrays),
                                              settings)[0]
        rows.append({'trunk': name, 'spec': spec, 'dataset': FLAGS.dataset,
                     'mAP': row['mAP'], 'top1': row['top1']})
        print(f'{name:>12}: GT-box search mAP {row["mAP"]:.4f}, top-1 {row["top1"]:.4f} '
              f'({FLAGS.dataset}, gallery {FLAGS.gallery_size}, {FLAGS.variant} shared map, '
              'no re-ID training)', flush=True)
    if FLAGS.output_json:
        with open(FLAGS.output_json, 'w') as stream:
            json.dump(rows, stream, indent=2)


if __name__ == '__main__':
    app.run(main)
