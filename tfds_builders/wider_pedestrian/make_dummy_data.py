"""Writes `dummy_data/`: a miniature WIDER Pedestrian 2019 release
(docs/datasets.md#wider-pedestrian-2019).

Run from the repository root:  python -m tfds_builders.wider_pedestrian.make_dummy_data

`SPLITS` is the intended ground truth the tests compare the reader with. Cases: an image without
pedestrians (absent from *_bbox.txt), one with only an ignore region, a box leaving the image,
a zero-size box (dropped), train images spread over sur_train/ and ad_train/ad_0{1,2,3}/, the
annotation files in another order than the list, and a truncated JPEG named like the release's
corrupt `sur03954.jpg` (skipped).
"""

from __future__ import annotations

import dataclasses
import io
import pathlib

import numpy as np
from PIL import Image

DUMMY_DIR = pathlib.Path(__file__).parent / 'dummy_data'


@dataclasses.dataclass(frozen=True)
class WiderImage:
    """One image: where it lives, its size, boxes and ignore regions (x, y, w, h pixels)."""
    name: str
    folder: str
    width: int
    height: int
    boxes: tuple[tuple[float, float, float, float], ...] = ()
    ignore: tuple[tuple[float, float, float, float], ...] = ()
    corrupt: bool = False
    zero_size: tuple[tuple[float, float, float, float], ...] = ()  # written, expected dropped

    def kept_xyxy(self) -> list[tuple[tuple[float, float, float, float], bool]]:
        """Expected `objects`: [(x1, y1, x2, y2), ignore], boxes first, then ignore regions."""
        return [((x, y, x + w, y + h), flag)
                for group, flag in ((self.boxes, False), (self.ignore, True))
                for x, y, w, h in group]


SPLITS = {
    'train': (
        WiderImage('sur00001.jpg', 'sur_train', 64, 32, boxes=((2, 3, 10, 20), (30, 5, 12.5, 25)),
                   ignore=((50, 20, 10, 10),)),
        WiderImage('sur00002.jpg', 'sur_train', 64, 32),  # no pedestrians
        WiderImage('ad00001.jpg', 'ad_train/ad_01', 74, 29, boxes=((60, 10, 20, 15),)),  # leaves
        WiderImage('sur03954.jpg', 'sur_train', 64, 32, boxes=((1, 1, 5, 5),), corrupt=True),
        WiderImage('ad00002.jpg', 'ad_train/ad_02', 74, 29, boxes=((5, 5, 8, 16),),
                   ignore=((40, 0, 30, 10),), zero_size=((20, 20, 0, 5),)),
        WiderImage('ad00003.jpg', 'ad_train/ad_03', 74, 29, ignore=((0, 0, 10, 10),)),
    ),
    'val': (
        WiderImage('ad00010.jpg', 'val_data', 74, 29, boxes=((10, 2, 6, 12), (20, 3, 6, 12)),
                   ignore=((60, 0, 14, 29),)),
        WiderImage('sur00010.jpg', 'val_data', 48, 32, boxes=((0, 0, 48, 32),)),
        WiderImage('sur00011.jpg', 'val_data', 48, 32),  # no pedestrians
    ),
    'test': (
        WiderImage('ad00020.jpg', 'test_data', 74, 29),
        WiderImage('sur00020.jpg', 'test_data', 48, 32),
    ),
}


def _number(value: float) -> str:
    return f'{value:g}'


def annotation_text(images: tuple[WiderImage, ...], kind: str) -> str:
    """`*_bbox.txt` (kind 'boxes') or `*_ignore.txt` (kind 'ignore'), in reverse list order."""
    lines = []
    for image in reversed(images):
        boxes = image.boxes + image.zero_size if kind == 'boxes' else image.ignore
        if boxes:
            lines.append(' '.join([image.name] + [_number(v) for box in boxes for v in box]))
    return ''.join(line + '\n' for line in lines)


def _jpeg_bytes(width: int, height: int, rng: np.random.Generator) -> bytes:
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format='JPEG', quality=50)
    return buffer.getvalue()


def write(root: pathlib.Path = DUMMY_DIR) -> None:
    """Writes the miniature release below `root` (the TFDS manual_dir)."""
    rng = np.random.default_rng(2019)
    (root / 'Annotations').mkdir(parents=True, exist_ok=True)
    for split, images in SPLITS.items():
        (root / 'Annotations' / f'{split}_list.txt').write_text(
            ''.join(image.name + '\n' for image in images))
        if split != 'test':
            (root / 'Annotations' / f'{split}_bbox.txt').write_text(
                annotation_text(images, 'boxes'))
            (root / 'Annotations' / f'{split}_ignore.txt').write_text(
                annotation_text(images, 'ignore'))
        for image in images:
            data = _jpeg_bytes(image.width, image.height, rng)
            if image.corrupt:
                data = data[:len(data) * 2 // 3]  # "Premature end of JPEG file"
            path = root / image.folder / image.name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


if __name__ == '__main__':
    write()
