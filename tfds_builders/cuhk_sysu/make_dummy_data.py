"""Writes the miniature CUHK-SYSU release in `dummy_data/` and states what it should parse to.

    python -m tfds_builders.cuhk_sysu.make_dummy_data [--out_dir DIR]

The scenario below is the single source of truth: `write_release()` turns it into files in the
release nesting (tiny random JPEGs; `.mat` files via `scipy.io.savemat` with the struct/cell
nesting of docs/datasets.md#cuhk-sysu-mat-files), and `expected()` derives the values the builder
must produce by index (not by box matching), so tests compare the builder with the intent, not
with a re-parse.

Tricky cases it holds (docs/datasets.md#cuhk-sysu, docs/datasets.md#pitfalls):
- uint8 and uint16 boxes, including uint8 boxes with x + w > 255 (s1, s7) that wrap around
  without widening, a box stored as uint16 in Images.mat and uint8 in TestG (s7), and a double
  box with negative w (s7);
- boxes with w = 0 or h = 0 (s1, s3, s12), an image whose only box is invalid (s5);
- a training image with unlabelled people only (s4), an identity seen once (nAppear = 1, p1003);
- a train list whose string order differs from numeric order (s13 sorts before s2);
- a pool order that is not sorted; two queries in one image (s9);
- a gallery listing the same image twice with the same box (query 1) and with two different
  boxes (query 2); the query image inside its own gallery with the query box itself (query 3)
  and with another box (query 4); positives first; `ishard` = 1 (query 1);
- Train.mat as (N, 1) (the `(1, N)` variant is written by `write_release(train_column=False)`).
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
from PIL import Image
import scipy.io

DTYPES = {'u8': np.uint8, 'u16': np.uint16, 'f8': np.float64}

#: name -> ((width, height), boxes as (x, y, w, h, dtype in Images.mat)), in Images.mat order.
IMAGES = {
    's1.jpg': ((320, 240), [(10, 20, 40, 100, 'u8'), (200, 30, 100, 150, 'u8'),
                            (50, 60, 0, 80, 'u8')]),
    's2.jpg': ((400, 300), [(300, 40, 50, 120, 'u16'), (100, 100, 30, 60, 'u8')]),
    's3.jpg': ((320, 240), [(5, 5, 60, 200, 'u8'), (20, 20, 30, 0, 'u8'),
                            (120, 40, 45, 100, 'u16')]),
    's4.jpg': ((320, 240), [(40, 40, 50, 100, 'u8'), (150, 50, 60, 120, 'u8')]),
    's5.jpg': ((320, 240), [(10, 10, 0, 0, 'u8')]),
    's6.jpg': ((400, 300), [(250, 60, 60, 200, 'u16'), (20, 30, 40, 90, 'u8')]),
    's7.jpg': ((400, 300), [(200, 10, 90, 200, 'u16'), (20, 50, 40, 100, 'u8'),
                            (330, 40, -5, 60, 'f8')]),
    's8.jpg': ((320, 240), [(60, 30, 50, 130, 'u8'), (150, 20, 45, 110, 'u8')]),
    's9.jpg': ((400, 300), [(30, 40, 50, 120, 'u8'), (150, 40, 50, 110, 'u8'),
                            (300, 50, 40, 100, 'u16')]),
    's10.jpg': ((320, 240), [(10, 10, 40, 100, 'u8'), (200, 20, 40, 100, 'u8')]),
    's11.jpg': ((320, 240), [(50, 50, 40, 90, 'u8'), (150, 30, 45, 110, 'u8')]),
    's12.jpg': ((400, 300), [(10, 20, 30, 80, 'u8'), (260, 30, 35, 90, 'u16'),
                             (150, 100, 20, 0, 'u8')]),
    's13.jpg': ((400, 300), [(260, 10, 40, 90, 'u16'), (60, 60, 30, 70, 'u8')]),
    's14.jpg': ((400, 300), [(100, 20, 40, 100, 'u8'), (300, 30, 20, 60, 'u16'),
                             (270, 40, 30, 80, 'u16')]),
}
POOL = ['s9.jpg', 's7.jpg', 's12.jpg', 's8.jpg', 's14.jpg', 's10.jpg', 's11.jpg']

#: Train.mat identities: (idname, [(image, index of the box in IMAGES, dtype in Train.mat)]).
TRAIN = [
    ('p1001', [('s1.jpg', 0, 'u8'), ('s2.jpg', 0, 'u16'), ('s6.jpg', 0, 'u16')]),
    ('p1002', [('s1.jpg', 1, 'u8'), ('s3.jpg', 0, 'u8')]),
    ('p1003', [('s13.jpg', 0, 'u16')]),
]

#: TestG queries: query (image, box index, dtype), idname, ishard, and per gallery size the
#: entries (image, box index or None for a negative, dtype). Both files share the query list.
QUERIES = [
    dict(query=('s9.jpg', 0, 'u8'), idname='p2001', ishard=0, galleries={
        50: [('s7.jpg', 0, 'u8'), ('s8.jpg', None, ''), ('s10.jpg', None, '')],
        100: [('s7.jpg', 0, 'u8'), ('s8.jpg', None, ''), ('s10.jpg', None, ''),
              ('s11.jpg', None, ''), ('s12.jpg', None, '')]}),
    dict(query=('s10.jpg', 0, 'u8'), idname='p2002', ishard=1, galleries={
        50: [('s11.jpg', 0, 'u8'), ('s11.jpg', 0, 'u8'), ('s7.jpg', None, ''),
             ('s9.jpg', None, '')],
        100: [('s11.jpg', 0, 'u8'), ('s11.jpg', 0, 'u8'), ('s7.jpg', None, ''),
              ('s9.jpg', None, ''), ('s12.jpg', None, ''), ('s14.jpg', None, '')]}),
    dict(query=('s11.jpg', 1, 'u8'), idname='p2003', ishard=0, galleries={
        50: [('s12.jpg', 0, 'u8'), ('s12.jpg', 1, 'u16'), ('s9.jpg', None, ''),
             ('s10.jpg', None, '')],
        100: [('s12.jpg', 0, 'u8'), ('s12.jpg', 1, 'u16'), ('s9.jpg', None, ''),
              ('s10.jpg', None, ''), ('s7.jpg', None, ''), ('s8.jpg', None, '')]}),
    dict(query=('s8.jpg', 0, 'u8'), idname='p2004', ishard=0, galleries={
        50: [('s8.jpg', 0, 'u8'), ('s14.jpg', 2, 'u16'), ('s7.jpg', None, ''),
             ('s9.jpg', None, '')],
        100: [('s8.jpg', 0, 'u8'), ('s14.jpg', 2, 'u16'), ('s7.jpg', None, ''),
              ('s9.jpg', None, ''), ('s10.jpg', None, ''), ('s11.jpg', None, '')]}),
    dict(query=('s14.jpg', 0, 'u8'), idname='p2005', ishard=0, galleries={
        50: [('s14.jpg', 1, 'u16'), ('s9.jpg', None, ''), ('s10.jpg', None, '')],
        100: [('s14.jpg', 1, 'u16'), ('s9.jpg', None, ''), ('s10.jpg', None, ''),
              ('s11.jpg', None, ''), ('s12.jpg', None, ''), ('s7.jpg', None, '')]}),
    dict(query=('s9.jpg', 1, 'u8'), idname='p2006', ishard=0, galleries={
        50: [('s10.jpg', 1, 'u8'), ('s7.jpg', None, ''), ('s8.jpg', None, '')],
        100: [('s10.jpg', 1, 'u8'), ('s7.jpg', None, ''), ('s8.jpg', None, ''),
              ('s11.jpg', None, ''), ('s12.jpg', None, ''), ('s14.jpg', None, '')]}),
]
TEST_PID_OFFSET = 10000  # The builder's documented choice, restated here on purpose.


# ----------------------------------------------------------------------------- ground truth


def _xyxy(image: str, index: int) -> tuple[float, float, float, float]:
    x, y, w, h, _ = IMAGES[image][1][index]
    return (float(x), float(y), float(x + w), float(y + h))


def _valid(image: str) -> list[int]:
    return [i for i, (_, _, w, h, _) in enumerate(IMAGES[image][1]) if w > 0 and h > 0]


def _image(name: str, index: int, pids: dict[tuple[str, int], int]) -> dict:
    valid = _valid(name)
    return dict(name=name, index=index, size=IMAGES[name][0],
                boxes=np.array([_xyxy(name, i) for i in valid], np.float64).reshape(-1, 4),
                person_ids=np.array([pids.get((name, i), -1) for i in valid], np.int64))


def expected() -> dict[str, list[dict]]:
    """What the builder must produce, per split, in protocol order.

    Returns:
        {'train': [...], 'gallery': [...], 'query': [...]}; each image dict has `name`, `index`
        (protocol_index), `size` (width, height), `boxes` (K, 4) x1, y1, x2, y2 pixels,
        `person_ids` (K,); query dicts add `query_box` (x1, y1, x2, y2), `query_person_id` and
        `galleries` {size: [(gallery protocol_index, x1, y1, x2, y2 box or None)]}.
    """
    train_pids = {(image, box): i + 1 for i, (_, scenes) in enumerate(TRAIN)
                  for image, box, _ in scenes}
    test_pids = {}
    for i, q in enumerate(QUERIES):
        test_pids[q['query'][:2]] = TEST_PID_OFFSET + i + 1
        for image, box, _ in q['galleries'][50]:
            if box is not None:
                test_pids[(image, box)] = TEST_PID_OFFSET + i + 1
    train_names = sorted(set(IMAGES) - set(POOL))  # string order, as SeqNet
    queries = []
    for i, q in enumerate(QUERIES):
        image, box, _ = q['query']
        example = _image(image, i, test_pids)
        example.update(
            query_box=_xyxy(image, box), query_person_id=TEST_PID_OFFSET + i + 1,
            galleries={size: [(POOL.index(im), None if b is None else _xyxy(im, b))
                              for im, b, _ in entries]
                       for size, entries in q['galleries'].items()})
        queries.append(example)
    return {
        'train': [_image(n, i, train_pids) for i, n in enumerate(train_names)],
        'gallery': [_image(n, i, test_pids) for i, n in enumerate(POOL)],
        'query': queries,
    }


# ----------------------------------------------------------------------------- writing


def _char(s: str) -> np.ndarray:
    return np.array([s])


def _box(image: str, index: int, dtype: str) -> np.ndarray:
    return np.array([IMAGES[image][1][index][:4]], DTYPES[dtype])


def _struct(rows: list[tuple], fields: tuple[str, ...]) -> np.ndarray:
    out = np.empty((1, len(rows)), dtype=[(f, 'O') for f in fields])
    for i, row in enumerate(rows):
        out[0, i] = row
    return out


def _cell(values: list, column: bool = True) -> np.ndarray:
    out = np.empty((len(values), 1) if column else (1, len(values)), dtype=object)
    for i, v in enumerate(values):
        out.flat[i] = v
    return out


def _jpeg(path: pathlib.Path, size: tuple[int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)  # Upscaled: compresses to ~2 kB.
    Image.fromarray(small).resize(size, Image.BILINEAR).save(path, quality=70)


def write_release(root: str | pathlib.Path, train_column: bool = True) -> None:
    """Writes the release tree of docs/datasets.md#cuhk-sysu-layout (Images.mat, pool.mat,
    Train.mat, TestG50.mat, TestG100.mat and the JPEGs) under `root`.

    Args:
        root: output folder (the `manual_dir`).
        train_column: Train.mat as a (N, 1) cell (as described) or, if False, (1, N).
    """
    root = pathlib.Path(root)
    (root / 'Image' / 'SSM').mkdir(parents=True, exist_ok=True)
    protocol_dir = root / 'annotation' / 'test' / 'train_test'
    protocol_dir.mkdir(parents=True, exist_ok=True)
    for seed, (name, (size, _)) in enumerate(IMAGES.items()):
        _jpeg(root / 'Image' / 'SSM' / name, size, seed)

    images = _struct([
        (_char(name), np.array([[len(boxes)]], np.float64),
         _struct([(np.array([b[:4]], DTYPES[b[4]]), np.array([[0]], np.uint8)) for b in boxes],
                 ('idlocate', 'ishard')))
        for name, (_, boxes) in IMAGES.items()], ('imname', 'nAppear', 'box'))
    scipy.io.savemat(root / 'annotation' / 'Images.mat', {'Img': images})
    scipy.io.savemat(root / 'annotation' / 'pool.mat', {'pool': _cell(POOL)})

    train = _cell([
        _struct([(_char(idname), np.array([[len(scenes)]], np.float64),
                  _struct([(_char(im), _box(im, b, dt), np.array([[0]], np.uint8))
                           for im, b, dt in scenes], ('imname', 'idlocate', 'ishard')))],
                ('idname', 'nAppear', 'scene'))
        for idname, scenes in TRAIN], column=train_column)
    scipy.io.savemat(protocol_dir / 'Train.mat', {'Train': train})

    empty = np.zeros((1, 0), np.float64)
    for size in (50, 100):
        rows = []
        for q in QUERIES:
            image, box, dtype = q['query']
            query = _struct([(_char(image), _box(image, box, dtype),
                              np.array([[q['ishard']]], np.uint8), _char(q['idname']))],
                            ('imname', 'idlocate', 'ishard', 'idname'))
            gallery = _struct([
                (_char(im), empty, empty) if b is None else
                (_char(im), _box(im, b, dt), np.array([[0]], np.uint8))
                for im, b, dt in q['galleries'][size]], ('imname', 'idlocate', 'ishard'))
            rows.append((query, gallery))
        scipy.io.savemat(protocol_dir / f'TestG{size}.mat',
                         {f'TestG{size}': _struct(rows, ('Query', 'Gallery'))})


def check_nesting(root: str | pathlib.Path) -> None:
    """Loads the written files back and checks the nesting of docs/datasets.md#cuhk-sysu-mat-files.

    Raises:
        ValueError: a file does not have the documented nesting.
    """
    root = pathlib.Path(root)
    checks = []
    protoc = scipy.io.loadmat(root / 'annotation/test/train_test/TestG100.mat')['TestG100']
    protoc = protoc.squeeze()
    checks.append(protoc['Query'][0]['imname'][0, 0][0] == 's9.jpg')
    checks.append(protoc[0]['Query'][0, 0][0][0] == 's9.jpg')
    checks.append(protoc['Query'][1]['ishard'][0, 0].tolist() == [[1]])
    box = protoc['Query'][0]['idlocate'][0, 0]
    checks.append(box.dtype == np.uint8 and box.shape == (1, 4))
    gallery = protoc['Gallery'][2].squeeze()
    checks.append(gallery[1][1].dtype == np.uint16 and gallery[1][1][0].shape == (4,))
    negative = gallery[2][1]
    checks.append(negative.shape == (1, 0) and negative.dtype == np.float64)
    img = scipy.io.loadmat(root / 'annotation/Images.mat')['Img'].squeeze()
    name, _, boxes = img[0]
    checks.append(str(name[0]) == 's1.jpg')
    checks.append(np.asarray([b[0] for b in boxes[0]]).reshape(-1, 4).tolist()[1]
                  == [200, 30, 100, 150])
    pool = scipy.io.loadmat(root / 'annotation/pool.mat')['pool']
    checks.append(pool.shape == (len(POOL), 1) and str(pool.squeeze()[0][0]) == 's9.jpg')
    train = scipy.io.loadmat(root / 'annotation/test/train_test/Train.mat')['Train'].squeeze()
    scenes = train[0][0, 0][2].squeeze()
    checks.append(str(scenes[0][0][0]) == 's1.jpg' and scenes[1][1].squeeze().tolist()
                  == [300, 40, 50, 120])
    if not all(checks):
        raise ValueError(f'{root}: written .mat files do not have the documented nesting '
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
