"""Training stages: detection (stage 1), feature pooling to TFRecords, re-ID (stage 2)."""
