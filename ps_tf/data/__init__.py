"""tf.data input pipelines: TFDS examples of the shared schema -> decoded tensors -> parsed model
inputs (flip, resize + pad, anchor targets) -> weighted mixes of datasets.

- `decoder.py`: `decode_example`, a TFDS example to plain tensors with fixed keys.
- `detection_parser.py`: `TrainParser` (image + anchor targets), `EvalParser` (image + image_info +
  padded ground truth) and `boxes_to_original`.
- `datasets.py`: dataset specs, building/loading TFDS datasets, the mixed training dataset and the
  evaluation dataset.
"""
