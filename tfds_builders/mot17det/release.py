"""Reads the MOT17Det release (docs/datasets.md#mot17det): `seqinfo.ini`, `gt/gt.txt` and the
frame folders.

Kept apart from the TFDS builder so that it can be tested without building a dataset.

Decisions (see the builder's docstring too):
- Positives are `flag == 1 & class == 1 & visibility >= min_visibility` (FairMOT / ByteTrack with
  `min_visibility=0`, Tracktor with 0.25). Classes 2, 7, 8, 12 (person on vehicle, static person,
  distractor, reflection) are ignore regions. A class-1 row that fails the flag or visibility test
  is also an ignore region: it is still a person, so it must not become background for the
  detection loss. Every other class is dropped.
- Boxes are kept as annotated: x1 = bb_left, y1 = bb_top, x2 = bb_left + bb_width,
  y2 = bb_top + bb_height, in pixels, no -1. The devkit calls MOT boxes "1-based", but the
  detector loaders and converters everyone trains with (Tracktor's `MOTObjDetect`, FairMOT,
  ByteTrack, mmtracking) do not shift them; the <= 1 pixel offset is below the annotation noise.
- `objects/box` keeps boxes that leave the image (as annotated); `objects/bbox` is clipped by
  `schema.encode_objects`. Boxes with no area inside the image are dropped and counted.
- MOT track ids are not re-ID identities across datasets: every box gets `schema.NO_IDENTITY`.
"""

from __future__ import annotations

import configparser
import dataclasses
import re
from typing import Any, Iterator

import numpy as np
from absl import logging
from etils import epath

from tfds_builders import release_files, schema

PEDESTRIAN = 1
IGNORE_CLASSES = frozenset({2, 7, 8, 12})
GT_COLUMNS = 9
SEQINFO_SECTION = 'Sequence'
# configparser lower-cases keys, so `imWidth` and `imwidth` are the same key.
SEQINFO_REQUIRED = ('name', 'imDir', 'seqLength', 'imWidth', 'imHeight')
_SEQUENCE_NAME = re.compile(r'^MOT\d+-(\d+)$')
_TRACKING_COPY = re.compile(r'^MOT\d+-\d+-[A-Za-z]+$')


@dataclasses.dataclass(frozen=True)
class SequenceInfo:
    """What `seqinfo.ini` says about one sequence."""
    name: str
    im_dir: str
    seq_length: int
    width: int
    height: int
    im_ext: str = '.jpg'
    frame_rate: float | None = None

    def frame_name(self, frame: int) -> str:
        """File name of a 1-based frame number, e.g. `000001.jpg`."""
        return f'{frame:06d}{self.im_ext}'


@dataclasses.dataclass
class GtStats:
    """How the rows of one gt.txt were used."""
    rows: int = 0
    positives: int = 0
    ignore_regions: int = 0
    dropped_class: int = 0
    dropped_outside: int = 0


@dataclasses.dataclass
class FrameBoxes:
    """Boxes of one frame: (K, 4) x1, y1, x2, y2 pixels as annotated, and (K,) ignore flags."""
    boxes: list[tuple[float, float, float, float]] = dataclasses.field(default_factory=list)
    ignore: list[bool] = dataclasses.field(default_factory=list)


def read_seqinfo(path: epath.PathLike) -> SequenceInfo:
    """Parses a `seqinfo.ini` with configparser, tolerating extra keys.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: no `[Sequence]` section, a required key missing, or a value of the wrong type.
    """
    path = epath.Path(path)
    if not path.exists():
        raise FileNotFoundError(f'{path}: missing seqinfo.ini (expected [{SEQINFO_SECTION}] with '
                                f'keys {", ".join(SEQINFO_REQUIRED)})')
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(path.read_text(), source=str(path))
    except configparser.Error as error:
        raise ValueError(f'{path}: not a valid INI file: {error}') from error
    if not parser.has_section(SEQINFO_SECTION):
        raise ValueError(f'{path}: no [{SEQINFO_SECTION}] section (found {parser.sections()})')
    section = parser[SEQINFO_SECTION]
    missing = [key for key in SEQINFO_REQUIRED if key not in section]
    if missing:
        raise ValueError(f'{path}: [{SEQINFO_SECTION}] lacks the required keys {missing}')

    def positive_int(key: str) -> int:
        value = section[key].strip()
        if not re.fullmatch(r'\d+', value) or int(value) <= 0:
            raise ValueError(f'{path}: {key}={value!r}, expected a positive integer')
        return int(value)

    frame_rate = None
    if 'frameRate' in section:
        try:
            frame_rate = float(section['frameRate'])
        except ValueError as error:
            raise ValueError(f'{path}: frameRate={section["frameRate"]!r}, expected a number'
                             ) from error
    im_ext = section.get('imExt', '.jpg').strip()
    if not im_ext.startswith('.'):
        raise ValueError(f'{path}: imExt={im_ext!r}, expected an extension such as .jpg')
    return SequenceInfo(name=section['name'].strip(), im_dir=section['imDir'].strip(),
                        seq_length=positive_int('seqLength'), width=positive_int('imWidth'),
                        height=positive_int('imHeight'), im_ext=im_ext, frame_rate=frame_rate)


def classify_row(flag: int, class_id: int, visibility: float, min_visibility: float) -> str | None:
    """Returns 'positive', 'ignore' or None (dropped) for one gt.txt row (see module docstring)."""
    if class_id == PEDESTRIAN:
        return 'positive' if flag == 1 and visibility >= min_visibility else 'ignore'
    if class_id in IGNORE_CLASSES:
        return 'ignore'
    return None


def read_gt(path: epath.PathLike, info: SequenceInfo,
            min_visibility: float) -> tuple[dict[int, FrameBoxes], GtStats]:
    """Parses a `gt/gt.txt` (9 comma-separated columns, no header).

    Args:
        path: the gt.txt file.
        info: the sequence's seqinfo (frame range and image size).
        min_visibility: visibility a class-1 row needs to be a positive.

    Returns:
        1-based frame number -> its kept boxes (x1, y1, x2, y2 pixels, as annotated), and counts.

    Raises:
        ValueError: naming file and line, for a row that is not 9 numbers, a non-integer frame,
            flag or class, a frame outside 1..seqLength, or a negative width/height.
    """
    path = epath.Path(path)
    frames: dict[int, FrameBoxes] = {}
    stats = GtStats()
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f'{path}:{line_number}'
        fields = [f.strip() for f in line.split(',')]
        if len(fields) != GT_COLUMNS:
            raise ValueError(f'{where}: {len(fields)} columns, expected {GT_COLUMNS} (frame, id, '
                             f'bb_left, bb_top, bb_width, bb_height, flag, class, visibility): '
                             f'{line!r}')
        try:
            values = [float(f) for f in fields]
        except ValueError as error:
            raise ValueError(f'{where}: expected {GT_COLUMNS} numbers: {line!r}') from error
        if not np.all(np.isfinite(values)):
            raise ValueError(f'{where}: non-finite value in {line!r}')
        frame, _, left, top, width, height, flag, class_id, visibility = values
        for name, value in (('frame', frame), ('flag', flag), ('class', class_id)):
            if value != int(value):
                raise ValueError(f'{where}: {name}={value}, expected an integer')
        if not 1 <= frame <= info.seq_length:
            raise ValueError(f'{where}: frame {int(frame)} outside 1..{info.seq_length} '
                             f'(seqLength of {info.name})')
        if width < 0 or height < 0:
            raise ValueError(f'{where}: negative bb_width/bb_height {width}, {height}')
        stats.rows += 1
        kind = classify_row(int(flag), int(class_id), visibility, min_visibility)
        if kind is None:
            stats.dropped_class += 1
            continue
        x1, y1, x2, y2 = left, top, left + width, top + height
        if min(x2, info.width) <= max(x1, 0) or min(y2, info.height) <= max(y1, 0):
            stats.dropped_outside += 1
            continue
        entry = frames.setdefault(int(frame), FrameBoxes())
        entry.boxes.append((x1, y1, x2, y2))
        entry.ignore.append(kind == 'ignore')
        stats.positives += kind == 'positive'
        stats.ignore_regions += kind == 'ignore'
    return frames, stats


def camera_id(sequence_name: str) -> int:
    """The sequence number as camera id (`MOT17-02` -> 2), or -1 for other names."""
    match = _SEQUENCE_NAME.match(sequence_name)
    return int(match.group(1)) if match else schema.UNKNOWN_CAMERA


def list_sequences(split_dir: epath.Path) -> list[epath.Path]:
    """The sequence folders of a split (those holding a seqinfo.ini), sorted by name.

    Raises:
        ValueError: the split holds the MOT17 *tracking* release's detector copies
            (`MOT17-02-FRCNN`, ...) or no sequence at all.
    """
    sequences = sorted((p for p in split_dir.iterdir() if (p / 'seqinfo.ini').exists()),
                       key=lambda p: p.name)
    copies = [p.name for p in sequences if _TRACKING_COPY.match(p.name)]
    if copies:
        raise ValueError(f'{split_dir}: {copies} look like the MOT17 tracking release (one copy '
                         f'per public detector). Download MOT17Det, whose sequences are named '
                         f'MOT17-02, MOT17-04, ...')
    if not sequences:
        raise ValueError(f'{split_dir}: no sequence folder with a seqinfo.ini')
    return sequences


def _check_frames(sequence_dir: epath.Path, info: SequenceInfo) -> epath.Path:
    """Checks that the image folder holds frames 1..seqLength and that their size matches."""
    image_dir = sequence_dir / info.im_dir
    if not image_dir.is_dir():
        raise FileNotFoundError(f'{image_dir}: missing image folder (imDir={info.im_dir} in '
                                f'{sequence_dir / "seqinfo.ini"})')
    present = {p.name for p in image_dir.iterdir()}
    missing = [info.frame_name(f) for f in range(1, info.seq_length + 1)
               if info.frame_name(f) not in present]
    if missing:
        raise FileNotFoundError(f'{image_dir}: {len(missing)} of {info.seq_length} frames '
                                f'(seqLength) are missing, e.g. {missing[:3]}')
    height, width = release_files.image_size(image_dir / info.frame_name(1))
    size = (width, height)
    if size != (info.width, info.height):
        raise ValueError(f'{image_dir / info.frame_name(1)}: image is {size[0]}x{size[1]} but '
                         f'seqinfo.ini says imWidth x imHeight = {info.width}x{info.height}')
    return image_dir


def split_examples(split_dir: epath.PathLike, labelled: bool,
                   min_visibility: float = 0.0) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yields `(key, example)` in the shared schema for every frame of a split, in natural order.

    Natural order = sequences by name, frames ascending; `protocol_index` counts along it. Keys
    and `image/filename` are `<sequence>/<imDir>/<frame>.jpg`, relative to the split folder.

    Args:
        split_dir: `MOT17Det/train` or `MOT17Det/test`.
        labelled: read `gt/gt.txt` (train) or yield frames without objects (test).
        min_visibility: see `classify_row`.
    """
    split_dir = epath.Path(split_dir)
    index = 0
    for sequence_dir in list_sequences(split_dir):
        info = read_seqinfo(sequence_dir / 'seqinfo.ini')
        if info.name != sequence_dir.name:
            logging.warning('%s: seqinfo.ini names the sequence %r; using the folder name',
                            sequence_dir, info.name)
        image_dir = _check_frames(sequence_dir, info)
        frames: dict[int, FrameBoxes] = {}
        if labelled:
            gt_path = sequence_dir / 'gt' / 'gt.txt'
            if not gt_path.exists():
                raise FileNotFoundError(f'{gt_path}: missing (every train sequence has gt/gt.txt)')
            frames, stats = read_gt(gt_path, info, min_visibility)
            logging.info('%s: %s', gt_path, dataclasses.asdict(stats))
        camera = camera_id(sequence_dir.name)
        for frame in range(1, info.seq_length + 1):
            name = f'{sequence_dir.name}/{info.im_dir}/{info.frame_name(frame)}'
            boxes = frames.get(frame, FrameBoxes())
            objects = schema.encode_objects(
                np.asarray(boxes.boxes, np.float64).reshape(-1, 4),
                [schema.NO_IDENTITY] * len(boxes.boxes), boxes.ignore, info.height, info.width,
                where=name)
            yield name, {
                'image': image_dir / info.frame_name(frame),
                'image/filename': name,
                'protocol_index': index,
                'camera_id': camera,
                'objects': objects,
                'query': schema.empty_query(),
            }
            index += 1
