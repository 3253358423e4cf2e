"""PRW, Person Re-identification in the Wild (Zheng et al., CVPR 2017), from the original release.

Splits, in the shared schema (`tfds_builders/schema.py`):
- `train`: the 5,704 `frame_train.mat` frames in file order, 18,048 boxes, 483 training ids.
- `gallery`: the 6,112 `frame_test.mat` frames in file order, 25,062 boxes, 544 ids (450 test ids
  and 94 training ids).
- `query`: the 2,057 `query_info.txt` queries in file order (example key = query index), each with
  its frame and all its objects, `query/box` and `query/person_id`. No gallery lists: the protocol
  runs over the whole gallery split minus the query's frame (docs/evaluation.md#prw-search).

Boxes: `objects/box` = x1, y1, x2, y2 = x, y, x + w, y + h from the release's float (x, y, w, h),
unclipped (coordinates may be negative; the evaluation applies SeqNet's clip/int32 convention);
boxes with w <= 0 or h <= 0 are dropped. `person_id` is the raw PRW id, -2 -> -1
(`schema.NO_IDENTITY`); `identities.training_id_map()` gives the contiguous training labels.
`camera_id` = the `c<d>` of the frame name (1..6).
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import build_checks, release_files
from tfds_builders import schema
from tfds_builders.prw import release

_NAME = 'prw'
#: Folder names the release extracts to, accepted one level below `manual_dir`.
_ROOT_NAMES = ('PRW-v16.04.20', 'PRW', 'prw')
_REQUIRED = (release.FRAMES_DIR, release.ANNOTATIONS_DIR, release.FRAME_TRAIN, release.FRAME_TEST,
             release.ID_TRAIN, release.ID_TEST, release.QUERY_INFO)
#: Published counts (docs/datasets.md#prw-counts), checked after each split is written.
_EXPECTED = {
    'train': {'images': 5704, 'boxes': 18048, 'labelled_boxes': 14907, 'identities': 483,
              'images_without_people': 0},
    'gallery': {'images': 6112, 'boxes': 25062, 'labelled_boxes': 19127, 'identities': 544,
                'images_without_people': 0},
    'query': {'images': 2057},
}

_TREE = """\
<manual_dir>/                   (or <manual_dir>/PRW-v16.04.20/ or PRW/)
  frames/       c1s1_000151.jpg ...        (11,816 frames)
  annotations/  c1s1_000151.jpg.mat ...    (one per frame)
  frame_train.mat   frame_test.mat
  ID_train.mat      ID_test.mat
  query_info.txt
  (query_box/ is not needed)
"""


def find_root(manual_dir: epath.PathLike) -> epath.Path:
    """`manual_dir` itself, or the release folder one level below it."""
    return release_files.find_release_root(manual_dir, release.FRAME_TEST, _ROOT_NAMES)


class Builder(tfds.core.GeneratorBasedBuilder):
    """PRW from the original release (manual download)."""

    VERSION = tfds.core.Version('1.0.0')
    RELEASE_NOTES = {'1.0.0': 'Initial release: train, gallery and query splits, raw ids.'}
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download the original PRW release `PRW-v16.04.20.zip` (Google Drive id
0B6tjyrV1YrHeYnlhNnhEYTh5MUU, also linked as goo.gl/2SNesA from the authors' page), extract it and
pass the folder as `--manual_dir`. Expected tree:

{_TREE}"""

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=__doc__,
            features=schema.features(),
            homepage='https://github.com/liangzheng06/PRW-baseline',
            citation='@inproceedings{zheng2017person, title={Person Re-identification in the '
                     'Wild}, author={Zheng, Liang and Zhang, Hengheng and Sun, Shaoyan and '
                     'Chandraker, Manmohan and Yang, Yi and Tian, Qi}, booktitle={CVPR}, '
                     'year={2017}}',
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
        root = build_checks.require_paths(find_root(dl_manager.manual_dir), _REQUIRED, _NAME,
                                          _TREE)
        train = release.read_frame_list(root / release.FRAME_TRAIN, 'img_index_train')
        test = release.read_frame_list(root / release.FRAME_TEST, 'img_index_test')
        overlap = sorted(set(train) & set(test))
        if overlap:
            raise ValueError(f'{root / release.FRAME_TEST}: {len(overlap)} frames are also in '
                             f'{release.FRAME_TRAIN}, e.g. {overlap[:5]}')
        train_ids = release.read_ids(root / release.ID_TRAIN, ['ID_train'])
        test_ids = release.read_ids(root / release.ID_TEST, ['ID_test2', 'ID_test'])
        queries = release.read_query_info(root / release.QUERY_INFO)
        test_index = {name: i for i, name in enumerate(test)}
        for i, query in enumerate(queries):
            if query.frame not in test_index:
                raise ValueError(f'{root / release.QUERY_INFO}: query {i} (line {i + 1}): frame '
                                 f'{query.frame!r} is not in {release.FRAME_TEST}')
        not_test = sorted({q.person_id for q in queries} - set(test_ids.tolist()))
        if not_test:
            logging.warning('prw: %d query ids are not in %s: %s', len(not_test), release.ID_TEST,
                            not_test[:10])
        return {
            'train': self._counted('train', root, train, queries, set(train_ids.tolist())),
            'gallery': self._counted('gallery', root, test, queries, None),
            'query': self._counted('query', root, test, queries, None),
        }

    def _counted(self, split: str, root: epath.Path, frames: Sequence[str],
                 queries: Sequence[release.QueryInfo], train_ids: set[int] | None
                 ) -> Iterator[tuple[Any, dict[str, Any]]]:
        """`_generate_examples()` wrapped by `build_checks.count_examples()`."""
        return build_checks.count_examples(
            _NAME, split, self._generate_examples(split, root, frames, queries, train_ids),
            _EXPECTED[split])

    def _generate_examples(self, split: str, root: epath.Path, frames: Sequence[str],
                           queries: Sequence[release.QueryInfo], train_ids: set[int] | None
                           ) -> Iterator[tuple[Any, dict[str, Any]]]:
        """Yields (key, example) in protocol order.

        Args:
            split: 'train', 'gallery' or 'query'.
            root: the release folder.
            frames: the split's frames (for 'query': the gallery's) in file order.
            queries: `query_info.txt`, used by the query split.
            train_ids: `ID_train`, to check the train split's ids (None: no check).
        """
        dropped, unknown = [0], set()
        if split != 'query':
            for index, frame in enumerate(frames):
                example = self._example(root, frame, index, dropped)
                if train_ids is not None:
                    unknown.update(set(example['objects']['person_id'].tolist()) - train_ids
                                   - {schema.NO_IDENTITY})
                yield f'{frame}.jpg', example
        else:
            for q, query in enumerate(queries):
                example = self._example(root, query.frame, q, dropped)
                frame_path = root / release.FRAMES_DIR / f'{query.frame}.jpg'
                height, width = release_files.image_size(frame_path)
                where = f'{root / release.QUERY_INFO}: query {q} ({query.frame})'
                box_xywh = query.box_xywh
                if box_xywh[2] <= 0 or box_xywh[3] <= 0:
                    raise ValueError(f'{where}: expected w > 0 and h > 0, got (x, y, w, h) '
                                     f'{box_xywh.tolist()}')
                example['query'] = schema.encode_query(
                    release.boxes_xyxy(box_xywh)[0], query.person_id, {}, height, width, where)
                yield q, example
        if dropped[0]:
            logging.info('prw/%s: dropped %d boxes with w <= 0 or h <= 0.', split, dropped[0])
        if unknown:
            logging.warning('prw/%s: ids not in %s: %s', split, release.ID_TRAIN,
                            sorted(unknown)[:10])

    @staticmethod
    def _example(root: epath.Path, frame: str, index: int, dropped: list[int]
                 ) -> dict[str, Any]:
        path = root / release.FRAMES_DIR / f'{frame}.jpg'
        if not path.exists():
            raise FileNotFoundError(f'{path}: frame listed in {release.FRAME_TRAIN} or '
                                    f'{release.FRAME_TEST} not found')
        height, width = release_files.image_size(path)
        annotation = release.annotation_path(root, frame)
        rows = release.read_annotation(annotation)
        valid = (rows[:, 3] > 0) & (rows[:, 4] > 0)
        dropped[0] += int(np.sum(~valid))
        rows = rows[valid]
        return {
            'image': path,
            'image/filename': f'{frame}.jpg',
            'protocol_index': index,
            'camera_id': release.camera_id(frame),
            'objects': schema.encode_objects(release.boxes_xyxy(rows[:, 1:]),
                                             release.person_ids(rows[:, 0], str(annotation)),
                                             None, height, width, where=str(annotation)),
            'query': schema.empty_query(),
        }
