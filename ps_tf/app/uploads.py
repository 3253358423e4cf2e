"""Query images uploaded from the page: checked, then kept in the session's state directory.

An upload is kept only if it is small enough (`MAX_UPLOAD_BYTES`, `MAX_UPLOAD_PIXELS`: an image
that decodes to gigabytes is refused before its pixels are decoded) and decodes completely as a
JPEG, PNG or BMP, whatever its name or content type claimed. It is stored under a name the app
makes from its content (`<20 hex digits of its SHA-256>.<format>`), never the browser's, so a
name cannot reach outside the uploads folder, and uploading the same picture again gives the same
name (and the same marks: see `marks.py`).
"""

from __future__ import annotations

import hashlib
import io
import os
import re

import numpy as np
from PIL import Image

from ps_tf import atomic
from ps_tf.app.errors import NotFound, UploadRejected
from ps_tf.search.media import read_image

MAX_UPLOAD_BYTES = 20 * 1024 * 1024   # a 20 MB photo is a very large one
MAX_UPLOAD_PIXELS = 40_000_000        # 40 megapixels: 120 MB of RGB once decoded
UPLOAD_FORMATS = {'JPEG': 'jpg', 'PNG': 'png', 'BMP': 'bmp'}   # PIL format -> file extension
UPLOAD_NAME = re.compile(r'[0-9a-f]{20}\.(?:jpg|png|bmp)')
MIN_BOX_SIZE = 2   # pixels each way: a smaller box holds no person


def too_large(size: int, limit: int) -> UploadRejected:
    return UploadRejected(f'the upload is {size / 2**20:.1f} MB; the limit is '
                          f'{limit / 2**20:.0f} MB', 413)


class Uploads:
    """The uploaded query images of one session, in `directory` (created on the first upload).

    Args:
        directory: where uploads are kept (inside the session's state directory).
        max_bytes: larger uploads are refused (413).
    """

    def __init__(self, directory: str, max_bytes: int = MAX_UPLOAD_BYTES):
        self.directory, self.max_bytes = directory, int(max_bytes)

    def save(self, data: bytes) -> dict:
        """Checks and keeps an upload; returns its name (the id the page uses) and size.

        Raises:
            UploadRejected: too large, or not a decodable JPEG, PNG or BMP image.
        """
        if len(data) > self.max_bytes:
            raise too_large(len(data), self.max_bytes)
        image_format, (width, height) = _check_image(data)
        name = f'{hashlib.sha256(data).hexdigest()[:20]}.{UPLOAD_FORMATS[image_format]}'
        path = os.path.join(self.directory, name)
        if not os.path.exists(path):   # the same content was uploaded before: same name
            os.makedirs(self.directory, exist_ok=True)
            with atomic.replacing(path) as temporary, open(temporary, 'wb') as f:
                f.write(data)
        return {'upload': name, 'width': width, 'height': height}

    def path_of(self, name: str) -> str:
        """The file of an upload name the app gave out.

        Raises:
            NotFound: not such a name, or no such upload.
        """
        if not UPLOAD_NAME.fullmatch(name or ''):
            raise NotFound(f'no upload {name!r} (upload names are made by the app)')
        path = os.path.join(self.directory, name)
        if not os.path.isfile(path):
            raise NotFound(f'no upload {name!r}')
        return path

    def size(self, name: str) -> tuple[int, int]:
        """(width, height) of an upload, from its header (its pixels are not decoded)."""
        with Image.open(self.path_of(name)) as image:
            return image.size

    def image(self, name: str) -> np.ndarray:
        """(H, W, 3) uint8 pixels of an upload, from search's one image decoder."""
        return read_image(self.path_of(name))


def _check_image(data: bytes) -> tuple[str, tuple[int, int]]:
    """(PIL format, (width, height)) of an upload that decodes completely as an allowed image."""
    allowed = ', '.join(sorted(UPLOAD_FORMATS))
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format, size = image.format, image.size
            if image_format not in UPLOAD_FORMATS:
                raise UploadRejected(f'the upload is a {image_format} image; upload a '
                                     f'{allowed} image', 415)
            if size[0] * size[1] > MAX_UPLOAD_PIXELS:
                raise UploadRejected(f'the upload is {size[0]} x {size[1]} pixels; the limit is '
                                     f'{MAX_UPLOAD_PIXELS / 1e6:.0f} megapixels', 413)
            image.convert('RGB')   # decodes every pixel: a truncated file fails here
    except UploadRejected:
        raise
    except Image.DecompressionBombError as error:
        raise UploadRejected(f'the upload is too large an image: {error}', 413) from None
    except Exception as error:   # PIL raises several types for files it cannot read
        raise UploadRejected(f'the upload is not a readable {allowed} image '
                             f'({type(error).__name__}: {error})', 415) from None
    return image_format, size


def parse_box(text: str, width: int, height: int) -> list[int]:
    """A box drawn on an upload, 'x1,y1,x2,y2' in its pixels, as whole pixels inside the image.

    Whole pixels, so that the box names the same query each time it is sent (`marks.py`).

    Raises:
        ValueError: not four numbers, or less than `MIN_BOX_SIZE` pixels each way inside the
            image.
    """
    try:
        values = [float(v) for v in (text or '').split(',')]
    except ValueError:
        values = []
    if len(values) != 4 or not all(np.isfinite(values)):
        raise ValueError(f'the box must be x1,y1,x2,y2 in pixels, got {text!r}')
    x1, x2 = sorted(min(max(round(v), 0), width) for v in values[0::2])
    y1, y2 = sorted(min(max(round(v), 0), height) for v in values[1::2])
    if x2 - x1 < MIN_BOX_SIZE or y2 - y1 < MIN_BOX_SIZE:
        raise ValueError(f'draw a box around the person: {text!r} covers less than '
                         f'{MIN_BOX_SIZE} x {MIN_BOX_SIZE} pixels of the {width} x {height} image')
    return [x1, y1, x2, y2]
