"""Writes the miniature PRW release in `dummy_data/` and states what it should parse to.

    python -m tfds_builders.prw.make_dummy_data [--out_dir DIR]

The scenario below is the single source of truth: `write_release()` turns it into the release
files (tiny random JPEGs at 1/10 of the real frame sizes; `.mat` files via `scipy.io.savemat` in
the nesting of docs/datasets.md#prw-files; a CRLF `query_info.txt`), and `expected()` derives the
values the builder must produce, so tests compare against the intent rather than against a
re-parse.

Tricky cases it holds (docs/datasets.md#prw, docs/datasets.md#pitfalls):
- all three annotation variable names ('box_new', 'anno_file', 'anno_previous');
- negative x (c6s1_000026, c1s3_000200) and negative y (c4s1_000400), a box leaving the image
  (c2s2_000020), a box with w = 0 (c3s2_000100, dropped);
- -2 boxes, frames with only -2 boxes (c2s1_000301, c5s3_000010);
- pid 932 as a training id, 479 and 933 as test ids, a training id (5) in a test frame;
- the same id twice in one frame (5 in c6s1_000026, 600 in c6s2_000050);
- c6 frames at 72 x 58 (c1-c5 at 192 x 108);
- `ID_test.mat` with the key 'ID_test2'; `query_info.txt` with CRLF line endings and two
  queries in one frame; frame lists not in sorted order.
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
from PIL import Image
import scipy.io

#: Frame name -> (annotation variable name, rows [id, x, y, w, h]), in frame_train order.
TRAIN_FRAMES = {
    'c1s1_000151': ('box_new', [[1, 10.5, 5.25, 20.0, 50.0], [932, 60.0, 10.0, 25.5, 60.0],
                                [-2, 120.0, 20.0, 15.0, 40.0]]),
    'c6s1_000026': ('anno_file', [[932, -3.5, 2.0, 20.0, 40.0], [5, 30.0, 5.0, 18.0, 45.0],
                                  [5, 50.0, 10.0, 10.0, 30.0]]),
    'c2s1_000301': ('anno_previous', [[-2, 5.0, 5.0, 20.0, 50.0], [-2, 40.0, 10.0, 20.0, 50.0]]),
    'c3s2_000100': ('box_new', [[480, 100.0, 30.0, 30.0, 70.0], [1, 150.0, 20.0, 25.0, 80.0],
                                [-2, 10.0, 10.0, 0.0, 20.0]]),
}
#: The same for frame_test (= gallery) order.
TEST_FRAMES = {
    'c1s3_000200': ('anno_file', [[479, -1.703, 30.5756, 20.6436, 50.2289],
                                  [5, 100.0, 20.0, 20.0, 50.0], [-2, 150.0, 30.0, 15.0, 40.0]]),
    'c4s1_000400': ('box_new', [[479, 50.0, -2.5, 22.0, 60.0], [933, 120.0, 10.0, 25.0, 70.0]]),
    'c6s2_000050': ('anno_previous', [[933, 10.0, 5.0, 20.0, 45.0], [600, 40.0, 5.0, 15.0, 40.0],
                                      [600, 55.0, 8.0, 12.0, 35.0]]),
    'c5s3_000010': ('box_new', [[-2, 20.0, 20.0, 20.0, 50.0]]),
    'c2s2_000020': ('anno_file', [[600, 80.0, 15.0, 20.0, 60.0], [-2, 130.0, 10.0, 20.0, 55.0],
                                  [479, 170.0, 40.0, 30.0, 80.0]]),
}
ID_TRAIN = [1, 5, 480, 932]
ID_TEST = [479, 600, 933]
#: query_info.txt lines: (pid, x, y, w, h, frame); the values have at most 4 decimals.
QUERIES = [
    (479, -1.703, 30.5756, 20.6436, 50.2289, 'c1s3_000200'),
    (933, 120.0, 10.0, 25.0, 70.0, 'c4s1_000400'),
    (600, 40.0, 5.0, 15.0, 40.0, 'c6s2_000050'),
    (479, 50.0, -2.5, 22.0, 60.0, 'c4s1_000400'),
]


def frame_size(frame: str) -> tuple[int, int]:
    """(width, height): the real 1920 x 1080 (c1-c5) and 720 x 576 (c6), divided by 10."""
    return (72, 58) if frame.startswith('c6') else (192, 108)


def _frame(name: str, index: int, rows: list[list[float]]) -> dict:
    kept = [r for r in rows if r[3] > 0 and r[4] > 0]
    return dict(name=name, index=index, size=frame_size(name), camera=int(name[1]),
                boxes=np.array([[x, y, x + w, y + h] for _, x, y, w, h in kept],
                               np.float64).reshape(-1, 4),
                person_ids=np.array([-1 if r[0] == -2 else r[0] for r in kept], np.int64))


def expected() -> dict[str, list[dict]]:
    """What the builder must produce, per split, in protocol order.

    Returns:
        {'train': [...], 'gallery': [...], 'query': [...]}; each frame dict has `name`, `index`
        (protocol_index), `size` (width, height), `camera`, `boxes` (K, 4) x1, y1, x2, y2 pixels
        (unclipped) and `person_ids` (K,) raw ids with -2 -> -1; query dicts add `query_box`
        (x1, y1, x2, y2) and `query_person_id`.
    """
    queries = []
    for i, (pid, x, y, w, h, frame) in enumerate(QUERIES):
        example = _frame(frame, i, TEST_FRAMES[frame][1])
        example.update(query_box=(x, y, x + w, y + h), query_person_id=pid)
        queries.append(example)
    return {
        'train': [_frame(n, i, rows) for i, (n, (_, rows)) in enumerate(TRAIN_FRAMES.items())],
        'gallery': [_frame(n, i, rows) for i, (n, (_, rows)) in enumerate(TEST_FRAMES.items())],
        'query': queries,
    }


def _cell(names: list[str]) -> np.ndarray:
    out = np.empty((len(names), 1), dtype=object)
    for i, name in enumerate(names):
        out[i, 0] = name
    return out


def write_release(root: str | pathlib.Path) -> None:
    """Writes the release tree of docs/datasets.md#prw-layout (without query_box/) under `root`."""
    root = pathlib.Path(root)
    (root / 'frames').mkdir(parents=True, exist_ok=True)
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    for seed, (name, (key, rows)) in enumerate({**TRAIN_FRAMES, **TEST_FRAMES}.items()):
        small = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize(frame_size(name), Image.BILINEAR).save(
            root / 'frames' / f'{name}.jpg', quality=70)
        scipy.io.savemat(root / 'annotations' / f'{name}.jpg.mat',
                         {key: np.array(rows, np.float64)})
    scipy.io.savemat(root / 'frame_train.mat', {'img_index_train': _cell(list(TRAIN_FRAMES))})
    scipy.io.savemat(root / 'frame_test.mat', {'img_index_test': _cell(list(TEST_FRAMES))})
    scipy.io.savemat(root / 'ID_train.mat', {'ID_train': np.array([ID_TRAIN], np.float64)})
    scipy.io.savemat(root / 'ID_test.mat', {'ID_test2': np.array([ID_TEST], np.float64)})
    lines = [f'{pid} {x:.4f} {y:.4f} {w:.4f} {h:.4f} {frame}' for pid, x, y, w, h, frame in QUERIES]
    (root / 'query_info.txt').write_bytes(''.join(f'{line}\r\n' for line in lines).encode())


def check_nesting(root: str | pathlib.Path) -> None:
    """Loads the written files back and checks the nesting of docs/datasets.md#prw-files.

    Raises:
        ValueError: a file does not have the documented nesting.
    """
    root = pathlib.Path(root)
    train = scipy.io.loadmat(root / 'frame_train.mat')['img_index_train']
    anno = scipy.io.loadmat(root / 'annotations' / 'c6s1_000026.jpg.mat')
    lines = (root / 'query_info.txt').read_bytes().split(b'\n')
    checks = [
        train.shape == (len(TRAIN_FRAMES), 1),
        [img[0][0] + '.jpg' for img in train][0] == 'c1s1_000151.jpg',  # SeqNet's access
        scipy.io.loadmat(root / 'ID_test.mat')['ID_test2'].shape == (1, len(ID_TEST)),
        scipy.io.loadmat(root / 'ID_train.mat')['ID_train'].shape == (1, len(ID_TRAIN)),
        [k for k in anno if not k.startswith('__')] == ['anno_file'],
        anno['anno_file'].shape == (3, 5) and anno['anno_file'].dtype == np.float64,
        lines[0] == b'479 -1.7030 30.5756 20.6436 50.2289 c1s3_000200\r',
    ]
    if not all(checks):
        raise ValueError(f'{root}: written files do not have the documented nesting '
                         f'(checks {checks})')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out_dir', default=str(pathlib.Path(__file__).parent / 'dummy_data'))
    args = parser.parse_args()
    write_release(args.out_dir)
    check_nesting(args.out_dir)
    print(f'wrote {args.out_dir}')


if __name__ == '__main__':
    main()
