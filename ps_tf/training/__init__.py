"""Training stages: backbone pretraining, detection (stage 1), feature pooling to TFRecords, re-ID
(stage 2) and the optional joint fine-tuning. The top layer: only `train.py` imports it."""
