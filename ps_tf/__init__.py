"""ps_tf: end-to-end person search (RetinaNet detection + re-identification) in TensorFlow 2.

Data flow, one sub-package per stage:
    tfds_builders/ (datasets) -> ps_tf.data (tf.data pipelines) -> ps_tf.models -> ps_tf.training
    -> ps_tf.evaluation -> export/.
"""

__version__ = '0.1.0'
