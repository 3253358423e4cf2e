"""Reading the files of a manually downloaded release, the same way for every builder: through
epath (the TFDS test harness forbids plain `open`), with errors that name the file."""

from __future__ import annotations

from typing import Any, Iterable

import scipy.io
from etils import epath
from PIL import Image


def image_size(path: epath.PathLike) -> tuple[int, int]:
    """(height, width) of an image from its header, without decoding the pixels.

    Raises:
        ValueError: the file is not an image PIL can identify (names the file).
    """
    path = epath.Path(path)
    try:
        with path.open('rb') as f, Image.open(f) as image:
            width, height = image.size
    except (OSError, ValueError) as e:  # PIL.UnidentifiedImageError is an OSError.
        raise ValueError(f'{path}: cannot read the image header ({e})') from e
    return height, width


def load_mat(path: epath.PathLike) -> dict[str, Any]:
    """`scipy.io.loadmat(path)` (default arguments) through epath.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a MATLAB v5 file scipy can read.
    """
    path = epath.Path(path)
    if not path.exists():
        raise FileNotFoundError(f'{path}: file not found')
    try:
        with path.open('rb') as f:
            return scipy.io.loadmat(f)
    except (scipy.io.matlab.MatReadError, ValueError, TypeError, NotImplementedError,
            OSError) as e:
        raise ValueError(f'{path}: not a MATLAB v5 .mat file that scipy.io.loadmat can read '
                         f'({e})') from e


def find_release_root(manual_dir: epath.PathLike, marker: str,
                      folder_names: Iterable[str]) -> epath.Path:
    """`manual_dir` itself, or the release folder one level below it (users often point at the
    folder that holds the unpacked archive): the first of `folder_names` that contains
    `marker`, a path relative to the release root."""
    manual_dir = epath.Path(manual_dir)
    if not (manual_dir / marker).exists():
        for name in folder_names:
            if (manual_dir / name / marker).exists():
                return manual_dir / name
    return manual_dir
