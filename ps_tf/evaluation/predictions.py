"""Predictions files: a model's gallery detections and query embeddings, scored without the model.

One `.npz` archive (docs/formats.md#predictions-file):

| key                   | shape, dtype   | meaning                                         |
|-----------------------|----------------|-------------------------------------------------|
| `gallery_image_names` | (N,) str       | the gallery images, each once, in any order     |
| `det_image_index`     | (M,) int64     | row of `gallery_image_names` of each detection  |
| `det_boxes`           | (M, 4) float32 | pixel x1, y1, x2, y2 in the original image      |
| `det_scores`          | (M,) float32   | detection score                                 |
| `det_embeddings`      | (M, D) float32 | L2-normalised re-id embeddings                  |
| `query_embeddings`    | (Q, D) float32 | L2-normalised, in protocol query order          |

Images are matched to the dataset by name, so `gallery_image_names` may be in any order; it must
name every gallery image exactly once (an image without detections simply has no row in the
`det_*` arrays). Scores and embeddings must be float32: the reference evaluation compares float32
scores with the thresholds and ranks float32 similarities, and ties depend on it.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile

import numpy as np

from ps_tf import atomic

KEYS = ('gallery_image_names', 'det_image_index', 'det_boxes', 'det_scores', 'det_embeddings',
        'query_embeddings')
NORM_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True)
class Predictions:
    """The content of a predictions file (see the module docstring for shapes and dtypes)."""
    gallery_image_names: np.ndarray
    det_image_index: np.ndarray
    det_boxes: np.ndarray
    det_scores: np.ndarray
    det_embeddings: np.ndarray
    query_embeddings: np.ndarray

    def validate(self) -> None:
        """Checks shapes, dtypes, ranges and normalisation.

        Raises:
            ValueError: naming the offending key and what is wrong with it.
        """
        names = self.gallery_image_names
        if names.ndim != 1 or names.dtype.kind != 'U':
            raise ValueError(f'gallery_image_names must be a 1-D str array, got shape '
                             f'{names.shape} dtype {names.dtype}')
        unique, counts = np.unique(names, return_counts=True)
        if np.any(counts > 1):
            raise ValueError(f'gallery_image_names lists images more than once: '
                             f'{unique[counts > 1][:5].tolist()}')
        index = self.det_image_index
        if index.ndim != 1 or index.dtype.kind not in 'iu':
            raise ValueError(f'det_image_index must be a 1-D integer array (int64), got shape '
                             f'{index.shape} dtype {index.dtype}')
        num_dets = len(index)
        _check_float32('det_boxes', self.det_boxes, (num_dets, 4))
        _check_float32('det_scores', self.det_scores, (num_dets,))
        if self.det_embeddings.ndim != 2:
            raise ValueError(f'det_embeddings must be (M, D), got shape '
                             f'{self.det_embeddings.shape}')
        dim = self.det_embeddings.shape[1]
        _check_float32('det_embeddings', self.det_embeddings, (num_dets, dim))
        if self.query_embeddings.ndim != 2:
            raise ValueError(f'query_embeddings must be (Q, D), got shape '
                             f'{self.query_embeddings.shape}')
        _check_float32('query_embeddings', self.query_embeddings,
                       (len(self.query_embeddings), dim))
        out_of_range = (index < 0) | (index >= len(names))
        if np.any(out_of_range):
            raise ValueError(f'det_image_index out of range [0, {len(names)}): detections '
                             f'{np.flatnonzero(out_of_range)[:5].tolist()} have '
                             f'{index[out_of_range][:5].tolist()}')
        boxes = self.det_boxes
        backwards = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
        if np.any(backwards):
            raise ValueError(f'det_boxes must be x1, y1, x2, y2 with x2 >= x1 and y2 >= y1; '
                             f'detections {np.flatnonzero(backwards)[:5].tolist()} are not')
        for key in ('det_embeddings', 'query_embeddings'):
            _check_normalised(key, getattr(self, key))

    def aligned_to(self, gallery_names: np.ndarray, num_queries: int) -> np.ndarray:
        """Maps the detections to a dataset's gallery, checking that the files match.

        Args:
            gallery_names: (N,) the dataset's gallery image names in protocol order.
            num_queries: the dataset's number of queries.

        Returns:
            (M,) int64 gallery protocol index of each detection.

        Raises:
            ValueError: the gallery names are not exactly the dataset's, or the query count
                differs.
        """
        if len(self.query_embeddings) != num_queries:
            raise ValueError(f'query_embeddings has {len(self.query_embeddings)} rows but the '
                             f'dataset has {num_queries} queries')
        lookup = {name: i for i, name in enumerate(np.asarray(gallery_names).tolist())}
        ours = self.gallery_image_names.tolist()
        unknown = [name for name in ours if name not in lookup]
        missing = sorted(set(lookup) - set(ours))
        if unknown or missing:
            raise ValueError(f'gallery_image_names do not match the dataset gallery '
                             f'({len(lookup)} images): {len(unknown)} unknown '
                             f'(e.g. {unknown[:3]}), {len(missing)} missing (e.g. {missing[:3]})')
        to_protocol = np.asarray([lookup[name] for name in ours], np.int64)
        return to_protocol[self.det_image_index.astype(np.int64)]


def _check_float32(key: str, array: np.ndarray, shape: tuple[int, ...]) -> None:
    if array.shape != shape:
        raise ValueError(f'{key} must have shape {shape}, got {array.shape}')
    if array.dtype != np.float32:
        raise ValueError(f'{key} must be float32, got {array.dtype}')
    if not np.all(np.isfinite(array)):
        raise ValueError(f'{key} has non-finite values')


def _check_normalised(key: str, embeddings: np.ndarray) -> None:
    if not len(embeddings):
        return
    norms = np.linalg.norm(embeddings.astype(np.float64), axis=1)
    worst = int(np.argmax(np.abs(norms - 1.0)))
    if abs(norms[worst] - 1.0) > NORM_TOLERANCE:
        raise ValueError(f'{key} are not L2-normalised: row {worst} has norm {norms[worst]:.6f} '
                         f'(the evaluation never normalises; normalise before writing)')


def write_predictions(path: str, predictions: Predictions) -> None:
    """Validates `predictions` and writes them to `path` (.npz), atomically.

    Raises:
        ValueError: see `Predictions.validate`.
    """
    predictions.validate()
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with atomic.replacing(path) as temporary:
        with open(temporary, 'wb') as stream:
            np.savez(stream, **{key: getattr(predictions, key) for key in KEYS})


def _what_instead_of_npz(path: str) -> str | None:
    """What the file at `path` is when it is not an `.npz` (zip) archive; None when it is one."""
    with open(path, 'rb') as stream:
        head = stream.read(8)
    if head.startswith((b'PK\x03\x04', b'PK\x05\x06')):   # a zip file (an empty one: the latter)
        return None
    if not head:
        return 'an empty file'
    if head.startswith(b'\x93NUMPY'):
        return 'a single NumPy array (.npy, numpy.save), not an .npz archive of several'
    if head.startswith(b'\x80'):
        return 'a Python pickle, not an .npz archive'
    if head.lstrip()[:1] in (b'{', b'['):
        return 'text (JSON?), not an .npz archive'
    return f'not an .npz (zip) archive: it starts with {head!r}'


def read_predictions(path: str) -> Predictions:
    """Reads and validates a predictions file.

    Raises:
        ValueError: the file is not an `.npz` archive of plain arrays (naming the file and what it
            is instead), a key is missing, or `Predictions.validate` fails.
    """
    expected = (f'a predictions file is an .npz archive (numpy.savez; evaluate.py '
                f'--write_predictions writes one) of the arrays {", ".join(KEYS)}')
    instead = _what_instead_of_npz(path)
    if instead:
        raise ValueError(f'{path} is not a predictions file: it is {instead}; {expected}')
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in KEYS if key not in archive.files]
            if missing:
                raise ValueError(f'{path}: missing key(s) {missing}; a predictions file holds '
                                 f'{KEYS}')
            arrays = {}
            for key in KEYS:
                try:
                    arrays[key] = archive[key]
                except ValueError as error:   # object arrays: they would need pickle
                    raise ValueError(f'{path}: {key} cannot be read ({error}); {expected}, '
                                     'numbers and strings only') from None
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise ValueError(f'{path} is not a readable predictions file: a damaged .npz archive '
                         f'({type(error).__name__}: {error}); {expected}') from None
    if arrays['gallery_image_names'].dtype.kind == 'S':
        arrays['gallery_image_names'] = np.char.decode(arrays['gallery_image_names'], 'utf-8')
    predictions = Predictions(**arrays)
    try:
        predictions.validate()
    except ValueError as error:
        raise ValueError(f'{path}: {error}') from None
    return predictions
