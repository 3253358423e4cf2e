"""tf.data input pipelines: TFDS examples of the shared schema -> decoded tensors -> parsed model
inputs (flip, resize + pad, anchor targets) -> weighted mixes of datasets; and the records and
batches of stage 2 and the joint fine-tuning.

- `decoder.py`: `decode_example`, a TFDS example to plain tensors with fixed keys.
- `detection_parser.py`: `TrainParser` (image + anchor targets) and `EvalParser` (image +
  image_info + padded ground truth); the geometry they share is `ps_tf.ops.geometry`.
- `datasets.py`: dataset specs, building/loading TFDS datasets, the mixed training dataset and the
  evaluation dataset.
- `pooled/`: the pooled-feature records feature pooling writes and stage 2 reads (`records.py`),
  their manifest (`manifest.py`) and per-shard index (`index.py`).
- `identity_sampler.py`: stage 2's P x K identity-balanced batches of pooled records.
- `identity_images.py`: the joint fine-tuning's P x K batches of whole images.
"""
