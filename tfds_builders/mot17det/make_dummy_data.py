"""Writes `dummy_data/`: a miniature MOT17Det release with every tricky case of
docs/datasets.md#mot17det.

Run from the repository root:  python -m tfds_builders.mot17det.make_dummy_data

The module-level tables are the intended ground truth; the tests compare what the reader parses
with them. Each gt row carries the outcome it must have (`expect` with no visibility threshold,
`expect_vis25` with 0.25), which the script does not write.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
from PIL import Image

DUMMY_DIR = pathlib.Path(__file__).parent / 'dummy_data'


@dataclasses.dataclass(frozen=True)
class Row:
    """One gt.txt row plus its intended outcome ('positive', 'ignore' or 'dropped')."""
    frame: int
    track: int
    left: float
    top: float
    width: float
    height: float
    flag: int
    class_id: int
    visibility: float
    expect: str
    expect_vis25: str | None = None  # None: same as `expect`

    def line(self) -> str:
        numbers = [self.frame, self.track, self.left, self.top, self.width, self.height,
                   self.flag, self.class_id]
        return ','.join(f'{v:g}' for v in numbers) + f',{self.visibility:g}'

    def box_xyxy(self) -> tuple[float, float, float, float]:
        return (self.left, self.top, self.left + self.width, self.top + self.height)


@dataclasses.dataclass(frozen=True)
class Sequence:
    """One sequence: size, frame count, extra seqinfo lines, gt rows (None: test split)."""
    name: str
    width: int
    height: int
    frames: int
    frame_rate: int = 30
    extra_seqinfo: str = ''
    rows: tuple[Row, ...] | None = None
    with_det: bool = False


TRAIN = (
    Sequence('MOT17-02', 64, 48, 3, with_det=True, rows=(
        # Written sorted by track id, as the real gt.txt is, not by frame.
        Row(1, 1, 10, 5, 20, 30, 1, 1, 1.0, 'positive'),
        Row(2, 1, 11, 6, 20, 30, 1, 1, 0.9, 'positive'),
        Row(1, 2, 50, 30, 20, 30, 1, 1, 0.8, 'positive'),  # leaves the image (clipped bbox)
        Row(1, 3, 5, 5, 10, 10, 0, 7, 1.0, 'ignore'),  # static person
        Row(1, 4, 30, 10, 8, 8, 0, 3, 1.0, 'dropped'),  # car
        Row(1, 5, 20, 20, 10, 20, 1, 1, 0.1, 'positive', 'ignore'),  # low visibility
        Row(2, 6, -5, -4, 12, 10, 1, 1, 0.5, 'positive'),  # negative coordinates (clipped)
        Row(2, 7, 70, 10, 10, 10, 1, 1, 1.0, 'dropped'),  # entirely right of the image
        Row(2, 8, 0, 0, 5, 5, 0, 2, 1.0, 'ignore'),  # person on vehicle
        Row(2, 9, 40, 10, 10, 20, 0, 1, 1.0, 'ignore'),  # pedestrian with flag 0
        Row(2, 10, 30, 30, 6, 6, 0, 8, 0.3, 'ignore'),  # distractor
        Row(2, 11, 44, 2, 6, 6, 0, 12, 1.0, 'ignore'),  # reflection
        Row(2, 12, 20, 2, 6, 6, 0, 9, 1.0, 'dropped'),  # occluder
        # Frame 3 has no row: an image without people.
    )),
    # 640x480 like the real MOT17-05, scaled down; seqinfo with extra keys and mixed-case keys.
    Sequence('MOT17-05', 40, 30, 2, frame_rate=14,
             extra_seqinfo='seqType=static\nCameraHeight = 1.7\n; a comment\n', rows=(
                 Row(1, 1, 4, 4, 10, 20, 1, 1, 0.3, 'positive'),
                 Row(2, 2, 30, 10, 20, 25, 0, 12, 0.0, 'ignore'),  # leaves the image
             )),
)
TEST = (Sequence('MOT17-01', 64, 48, 2),)


def seqinfo_text(sequence: Sequence) -> str:
    """The seqinfo.ini of a sequence."""
    key_case = 'imwidth' if sequence.extra_seqinfo else 'imWidth'
    return (f'[Sequence]\nname={sequence.name}\nimDir=img1\nframeRate={sequence.frame_rate}\n'
            f'seqLength={sequence.frames}\n{key_case}={sequence.width}\n'
            f'imHeight={sequence.height}\nimExt=.jpg\n{sequence.extra_seqinfo}')


def gt_text(sequence: Sequence) -> str:
    """The gt.txt of a train sequence."""
    return ''.join(row.line() + '\n' for row in sequence.rows)


def expected_frames(sequence: Sequence, vis25: bool = False) -> dict[int, list[tuple]]:
    """1-based frame -> [(x1, y1, x2, y2), ignore] of the kept rows, in gt.txt order."""
    frames: dict[int, list[tuple]] = {f: [] for f in range(1, sequence.frames + 1)}
    for row in sequence.rows or ():
        outcome = row.expect_vis25 if vis25 and row.expect_vis25 else row.expect
        if outcome != 'dropped':
            frames[row.frame].append((row.box_xyxy(), outcome == 'ignore'))
    return frames


def _write_jpeg(path: pathlib.Path, width: int, height: int, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format='JPEG', quality=50)


def write(root: pathlib.Path = DUMMY_DIR) -> None:
    """Writes the miniature release below `root` (the TFDS manual_dir)."""
    rng = np.random.default_rng(17)
    for split, sequences in (('train', TRAIN), ('test', TEST)):
        for sequence in sequences:
            folder = root / split / sequence.name
            folder.mkdir(parents=True, exist_ok=True)
            (folder / 'seqinfo.ini').write_text(seqinfo_text(sequence))
            for frame in range(1, sequence.frames + 1):
                _write_jpeg(folder / 'img1' / f'{frame:06d}.jpg', sequence.width,
                            sequence.height, rng)
            if sequence.rows is not None:
                (folder / 'gt').mkdir(exist_ok=True)
                (folder / 'gt' / 'gt.txt').write_text(gt_text(sequence))
            if sequence.with_det:
                (folder / 'det').mkdir(exist_ok=True)
                (folder / 'det' / 'det.txt').write_text('1,-1,10,5,20,30,0.9\n')


if __name__ == '__main__':
    write()
