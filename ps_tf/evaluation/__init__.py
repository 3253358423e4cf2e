"""Person-search evaluation: detection AP, the CUHK-SYSU and PRW search protocols (numpy,
vectorised, numerically identical to SeqNet's `eval_func.py`) and predictions files.

Modules, in data-flow order:
    protocol.py           protocol data read from the TFDS gallery/query splits; GT box conventions
    predictions.py        predictions files (.npz): writer, reader, validation
    detection.py          detection recall and AP (mutual-best-IoU matching)
    cuhk_sysu.py, prw.py  each protocol's rules as a `search.SearchProblem`
    search.py             the ranking engine: recall-scaled AP and top-k
    prw_official.py       Zheng et al.'s original PRW protocol (junk, cross-camera, trapezoid AP)
    average_precision.py  scikit-learn's step-wise AP, its recall-scaled form, compute_AP.m's
    evaluator.py          everything for one predictions file, as rows for evaluate.py
    sweep.py              the same over several caps on the detections per image, and the best
"""

from ps_tf.evaluation.cuhk_sysu import FULL_SET
from ps_tf.evaluation.detection import DetectionResult, evaluate_detection
from ps_tf.evaluation.evaluator import EvalSettings, evaluate_predictions, format_table
from ps_tf.evaluation.predictions import Predictions, read_predictions, write_predictions
from ps_tf.evaluation.protocol import Protocol, load_protocol
from ps_tf.evaluation.search import GalleryDetections, SearchResult, evaluate_search

__all__ = [
    'FULL_SET', 'DetectionResult', 'evaluate_detection', 'EvalSettings', 'evaluate_predictions',
    'format_table', 'Predictions', 'read_predictions', 'write_predictions', 'Protocol',
    'load_protocol', 'GalleryDetections', 'SearchResult', 'evaluate_search',
]
