"""What the web app serves: the galleries, their index (built in a background thread, with
progress), searches over it, uploaded query images, the operator's marks and exports. No web
code here: `ps_tf.app.server` maps HTTP onto this.

The browser never names a file by path: files are addressed by their position in the sorted
gallery list, detections by their row in the index and uploads by the name the app gave them, so
a request cannot reach anything outside the configured galleries and the session's state
directory.

A query is either a detection of the index (`detection=row`, its embedding is the index's) or a
box drawn on an uploaded image (`upload=name, box='x1,y1,x2,y2'`, embedded by the model as
`search.py --query_image --query_box` embeds it); both are ranked the same way (`search`).

The state directory (`state_dir`, default `<index path without .npz>.app/` beside the index)
holds what the app writes besides the index: `uploads/` and `marks.json`. It must lie outside
the galleries, or a rescan would index the uploads as gallery files.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
import threading

import numpy as np
from PIL import Image

from ps_tf.app import exports
from ps_tf.app.errors import NotFound
from ps_tf.app.marks import Marks
from ps_tf.app.uploads import MAX_UPLOAD_BYTES, Uploads, parse_box
from ps_tf.search.contact_sheet import contact_sheet
from ps_tf.search.media import IMAGE_TIME, is_video, list_gallery, read_image, video_frames
from ps_tf.search.ranking import no_hits_warning, rank
from ps_tf.search.searcher import Searcher, query_embedding, update_index

__all__ = ['GallerySession', 'NotFound', 'check_state_dir', 'default_state_dir', 'expanded_query',
           'jpeg']

MARKS_FILE = 'marks.json'
UPLOADS_FOLDER = 'uploads'


def default_state_dir(index_path: str) -> str:
    """`<index path without .npz>.app`, beside the index (which lies beside the galleries)."""
    base = index_path[:-len('.npz')] if index_path.endswith('.npz') else index_path
    return os.path.abspath(base) + '.app'


def expanded_query(query: np.ndarray, confirmed: np.ndarray) -> np.ndarray:
    """The query embedding moved towards the hits the operator confirmed: the L2-normalised mean
    of the query's and the confirmed hits' embeddings (each normalised first, so each sighting
    weighs the same). Without confirmed hits, the query as it is.

    The mean (average query expansion), not the best similarity to any of them (max over
    queries), because:
    - averaging keeps what the sightings share, the person's appearance, and evens out what
      differs between them (pose, light, the background inside the box, box jitter);
    - under the max, a gallery detection ranks by its single best match, so one hit confirmed
      by mistake brings all of its own look-alikes to the top at full similarity; under the
      mean, one wrong confirmation among right ones moves the query only part of the way;
    - it stays one embedding, ranked by the same `rank()` (exact or approximate) at the cost
      of a plain search, where the max needs one ranking per confirmed hit, merged.
    What it gives up: a person confirmed in very different views (front and back) is searched
    for by their average, which may match each view less well than that view itself would.
    """
    if not np.size(confirmed):   # as search.py ranks it, to the last digit
        return np.asarray(query, np.float32)
    vectors = np.concatenate([np.reshape(query, (1, -1)),
                              np.reshape(confirmed, (-1, np.size(query)))]).astype(np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    mean = vectors.mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


@dataclasses.dataclass(frozen=True)
class _Query:
    """A resolved query: what it is (`record`, for the marks), its embedding, the detection it
    is (not a hit of itself), what the page shows of it, and its picture for the contact sheet."""
    record: dict
    embedding: np.ndarray
    own_row: int | None
    shown: dict
    file: str
    box: list
    time: float | None


class GallerySession:
    """The galleries, their index and searches over it.

    Args:
        searcher: the model (`Searcher.load`).
        galleries: folders, globs or files (`list_gallery`).
        index_path: the index file, shared with `search.py` (reused and extended).
        fps: frames per second sampled from videos.
        min_score: detections scoring below this are neither shown nor ranked.
        state_dir: the app's uploads and marks (default `default_state_dir(index_path)`);
            outside the galleries.
        max_upload_bytes: larger uploads are refused.

    Raises:
        ValueError: `state_dir` inside a gallery, its marks.json unreadable, or a gallery
            without images or videos.
    """

    def __init__(self, searcher: Searcher, galleries: list[str], index_path: str,
                 fps: float = 1.0, min_score: float = 0.5, state_dir: str | None = None,
                 max_upload_bytes: int = MAX_UPLOAD_BYTES):
        self.searcher, self.index_path = searcher, index_path
        self.fps, self.min_score = fps, min_score
        self.state_dir = os.path.abspath(state_dir or default_state_dir(index_path))
        self.uploads = Uploads(os.path.join(self.state_dir, UPLOADS_FOLDER), max_upload_bytes)
        self.marks = Marks(os.path.join(self.state_dir, MARKS_FILE))
        self.galleries: list[str] = []
        self.paths: list[str] = []
        self.index = None
        self._lock = threading.Lock()
        self._status = {'state': 'idle', 'done': 0, 'total': 0, 'error': None, 'video': None}
        self._thread: threading.Thread | None = None
        self._running = False    # an indexing thread runs (or is about to)
        self._pending = False    # the galleries changed since that thread started its pass
        for gallery in galleries:
            self.add_gallery(gallery)

    # ------------------------------------------------------------------ indexing
    def add_gallery(self, gallery: str, wait: bool = False) -> None:
        """Adds a gallery and indexes its new files in the background (`wait`: block until
        done).

        Raises:
            ValueError: nothing to index there, or the state directory lies inside it.
        """
        paths = list_gallery(gallery)
        _check_outside(self.state_dir, gallery)
        with self._lock:
            self.galleries.append(gallery)
            self.paths = sorted(set(self.paths) | set(paths))
        self._start_indexing()
        if wait:
            self.wait()

    def rescan(self) -> None:
        """Lists the galleries again and indexes their new or changed files (background)."""
        paths = sorted({path for gallery in self.galleries for path in list_gallery(gallery)})
        with self._lock:
            self.paths = paths
        self._start_indexing()

    def _start_indexing(self) -> None:
        """Indexes in a background thread; a change while it runs is indexed in a further pass
        of the same thread (so requests never wait for indexing)."""
        with self._lock:
            self._pending = True
            if self._running:
                return
            self._running = True
            self._thread = threading.Thread(target=self._index_passes, daemon=True)
            self._thread.start()

    def _index_passes(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._running = False
                    return
                self._pending = False
            self._index()

    def _index(self) -> None:
        self._set_status(state='indexing', done=0, total=0, error=None, video=None)
        try:
            index, _ = update_index(self.searcher, list(self.paths), self.index_path, self.fps,
                                    progress=False, on_file=self._file_indexed,
                                    on_frame=self._frames_indexed)
            with self._lock:
                self.index = index
            self._set_status(state='ready', video=None)
        except Exception as error:   # shown in the page; the app keeps serving
            self._set_status(state='error', error=f'{type(error).__name__}: {error}', video=None)

    def _file_indexed(self, done: int, total: int) -> None:
        """`done` of `total` files indexed; the video among them, if any, is finished."""
        self._set_status(done=done, total=total, video=None)

    def _frames_indexed(self, path: str, done: int, total: int | None) -> None:
        """`done` of the video's `total` sampled frames indexed (None: its length is unknown):
        the progress within one file, which for a long video lasts minutes."""
        self._set_status(video={'name': os.path.basename(path), 'done': done, 'total': total})

    def _set_status(self, **values) -> None:
        with self._lock:
            self._status.update(values)

    def wait(self) -> None:
        """Blocks until indexing (every pending pass) has finished."""
        while True:
            thread = self._thread
            if thread is None:
                return
            thread.join()
            with self._lock:
                if not self._running:
                    return

    def status(self) -> dict:
        """Indexing: `state` ('idle', 'indexing', 'ready' or 'error' with `error`), `done` of
        `total` files, `video` (while one is indexed: its `name` and `done` of `total` sampled
        frames, `total` None when unknown), and the gallery's `files` and `detections`."""
        with self._lock:
            detections = len(self.index) if self.index is not None else 0
            return {**self._status, 'files': len(self.paths), 'detections': detections}

    # ------------------------------------------------------------------ browsing
    def _ready_index(self):
        if self.index is None:
            raise NotFound('the gallery is still being indexed')
        return self.index

    @staticmethod
    def _check_row(index, row: int) -> None:
        if not 0 <= row < len(index):
            raise NotFound(f'no detection {row}')

    @staticmethod
    def _path_of_row(index, row: int) -> str:
        return index.keys[index.detections['det_file'][row]].path

    def files(self) -> list[dict]:
        """Every gallery file: id, name (relative to its gallery), video or not, detections."""
        index = self.index
        counts = {}
        if index is not None:
            shown = index.detections['det_scores'] >= self.min_score
            per_key = np.bincount(index.detections['det_file'][shown], minlength=len(index.keys))
            counts = {key.path: int(n) for key, n in zip(index.keys, per_key)}
        common = os.path.commonpath(self.paths) if len(self.paths) > 1 else os.path.dirname(
            self.paths[0]) if self.paths else ''
        return [{'id': i, 'name': os.path.relpath(path, common), 'video': is_video(path),
                 'detections': counts.get(path, 0)} for i, path in enumerate(self.paths)]

    def path_of(self, file_id: int) -> str:
        if not 0 <= file_id < len(self.paths):
            raise NotFound(f'no gallery file {file_id}')
        return self.paths[file_id]

    def detections(self, file_id: int) -> list[dict]:
        """The file's detections scoring at least `min_score`: row, frame time, box, score."""
        path, index = self.path_of(file_id), self._ready_index()
        rows = np.flatnonzero(index.detections_of([path])
                              & (index.detections['det_scores'] >= self.min_score))
        return [self._detection(index, row) for row in rows]

    @staticmethod
    def _detection(index, row: int) -> dict:
        time = float(index.detections['det_time'][row])
        return {'detection': int(row), 'time': None if time == IMAGE_TIME else time,
                'box': [round(float(v), 1) for v in index.detections['det_boxes'][row]],
                'score': round(float(index.detections['det_scores'][row]), 4)}

    def frame(self, file_id: int, time: float | None = None) -> np.ndarray:
        """The image, or the video's sampled frame nearest `time` (seconds)."""
        return self._pixels(self.path_of(file_id), time)

    def _pixels(self, path: str, time: float | None) -> np.ndarray:
        if not is_video(path):
            return read_image(path)
        return _video_frame(path, self.fps, round(float(time or 0.0), 3))

    def crop(self, row: int) -> np.ndarray:
        """A detection's box with a 10 % margin, from its frame."""
        index = self._ready_index()
        self._check_row(index, row)
        detection = self._detection(index, row)
        image = self._pixels(self._path_of_row(index, row), detection['time'])
        x1, y1, x2, y2 = detection['box']
        margin_x, margin_y = 0.1 * (x2 - x1), 0.1 * (y2 - y1)
        top, left = max(0, int(y1 - margin_y)), max(0, int(x1 - margin_x))
        return image[top:int(np.ceil(y2 + margin_y)), left:int(np.ceil(x2 + margin_x))]

    # ------------------------------------------------------------------ search
    def search(self, detection: int | None = None, top_k: int = 20,
               min_similarity: float = -1.0, upload: str | None = None,
               box: str | None = None) -> dict:
        """The detections most like the query (detection `detection`, itself excluded, or the
        `box` drawn on `upload`), each with its file id and its mark.

        The query's marks apply: it is expanded by its confirmed hits (`expanded_query`; the
        similarities are then to the expanded query) and its rejected hits are left out.
        """
        index = self._ready_index()
        query = self._query(index, detection, upload, box)
        hits, marks = self._ranked(index, query, top_k, min_similarity)
        return {'query': query.shown, 'hits': hits,
                'marks': {mark: len(rows) for mark, rows in marks.items()}}

    def _ranked(self, index, query: _Query, top_k: int,
                min_similarity: float) -> tuple[list[dict], dict[str, list[int]]]:
        """(the query's hits, {'confirmed' / 'rejected': index rows of its marks})."""
        if top_k < 1:
            raise ValueError(f'top_k must be >= 1, got {top_k}')
        marks = {mark: self._rows_of(index, records)
                 for mark, records in self.marks.of(query.record).items()}
        embedding = expanded_query(query.embedding,
                                   index.detections['det_embeddings'][marks['confirmed']])
        # Only as many extra as will be left out: with none, `rank` is called as search.py calls
        # it (ties between equal similarities fall the same way).
        left_out = set(marks['rejected']) | ({query.own_row} - {None})
        hits = [hit for hit in rank(index, self.paths, embedding, top_k + len(left_out),
                                    self.min_score)
                if hit['detection'] not in left_out and hit['similarity'] >= min_similarity]
        ids = {path: i for i, path in enumerate(self.paths)}
        confirmed = set(marks['confirmed'])
        for position, hit in enumerate(hits[:top_k]):
            hit.update(rank=position + 1, file_id=ids[hit['file']],
                       name=os.path.basename(hit['file']),
                       mark='confirmed' if hit['detection'] in confirmed else None)
        return hits[:top_k], marks

    def _query(self, index, detection: int | None, upload: str | None,
               box: str | None) -> _Query:
        if (detection is None) == (upload is None):
            raise ValueError('give a query: either a detection, or an upload with a box')
        if detection is not None:
            self._check_row(index, detection)
            record, shown = self._record(index, detection), self._detection(index, detection)
            embedding = index.detections['det_embeddings'][detection].astype(np.float32)
            return _Query(record, embedding, detection, shown, record['file'], record['box'],
                          record['frame_time'])
        path = self.uploads.path_of(upload)
        if not isinstance(box, str):
            box = ','.join(str(v) for v in box or ())
        pixels = parse_box(box, *self.uploads.size(upload))
        embedding = _upload_embedding(self.searcher, path, tuple(pixels))
        record = {'upload': upload, 'box': pixels}
        return _Query(record, embedding, None, dict(record), path, pixels, None)

    # ------------------------------------------------------------------ marks
    def mark(self, hit: int, mark: str | None, detection: int | None = None,
             upload: str | None = None, box: str | None = None) -> dict:
        """Marks detection `hit` 'confirmed' or 'rejected' as a sighting of the query (or
        unmarks it: None), saved at once; returns the query's counts of marks. A `search`
        (re-rank) applies them.

        Raises:
            ValueError: the query itself, or an unknown mark.
        """
        index = self._ready_index()
        query = self._query(index, detection, upload, box)
        self._check_row(index, hit)
        if hit == query.own_row:
            raise ValueError('the query is not a hit of itself: it cannot be marked')
        marks = self.marks.set(query.record, self._record(index, hit), mark)
        return {name: len(records) for name, records in marks.items()}

    def clear_marks(self, detection: int | None = None, upload: str | None = None,
                    box: str | None = None) -> None:
        """Forgets every mark of the query."""
        self.marks.clear(self._query(self._ready_index(), detection, upload, box).record)

    @staticmethod
    def _record(index, row: int) -> dict:
        """A detection by content (file, frame time, box as `rank()` rounds it), which outlives
        its row."""
        time = float(index.detections['det_time'][row])
        return {'file': index.keys[index.detections['det_file'][row]].path,
                'frame_time': None if time == IMAGE_TIME else time,
                'box': [round(float(v), 2) for v in index.detections['det_boxes'][row]]}

    def _rows_of(self, index, records: list[dict]) -> list[int]:
        """The current rows of detection records (records no longer in the index are left
        out)."""
        positions = {key.path: i for i, key in enumerate(index.keys)}
        rows = []
        for record in records:
            if record['file'] not in positions:
                continue
            candidates = np.flatnonzero(index.detections['det_file'] == positions[record['file']])
            rows += [int(row) for row in candidates if self._record(index, row) == record][:1]
        return rows

    # ------------------------------------------------------------------ uploads
    def upload(self, data: bytes) -> dict:
        """Keeps an uploaded query image (`Uploads.save`): {'upload': name, 'width',
        'height'}."""
        return self.uploads.save(data)

    def upload_image(self, name: str, box: str | None = None) -> np.ndarray:
        """An upload's pixels, or the part inside `box`."""
        image = self.uploads.image(name)
        if box is None:
            return image
        x1, y1, x2, y2 = parse_box(box, image.shape[1], image.shape[0])
        return image[y1:y2, x1:x2]

    # ------------------------------------------------------------------ exports
    def export_hits(self, detection: int | None = None, top_k: int = 20,
                    min_similarity: float = -1.0, upload: str | None = None,
                    box: str | None = None) -> dict:
        """The query's hits (as `search` ranks them) as `search.py`'s hits.json, plus the
        query's marks."""
        index = self._ready_index()
        query = self._query(index, detection, upload, box)
        hits, _ = self._ranked(index, query, top_k, min_similarity)
        warning = None if hits else no_hits_warning(index, self.paths, self.min_score)
        document = exports.hits_document(query.file, query.box, hits, warning)
        if query.time is not None:
            document['query_frame_time'] = query.time
        document['marks'] = self.marks.of(query.record)
        return document

    def export_contact_sheet(self, detection: int | None = None, top_k: int = 20,
                             min_similarity: float = -1.0, upload: str | None = None,
                             box: str | None = None) -> bytes:
        """The query and its hits as `search.py`'s contact sheet, PNG."""
        index = self._ready_index()
        query = self._query(index, detection, upload, box)
        hits, _ = self._ranked(index, query, top_k, min_similarity)
        return exports.png(contact_sheet(self._pixels(query.file, query.time),
                                         np.asarray(query.box, np.float32), hits, self.fps))

    def frame_strip(self, row: int) -> bytes:
        """A video detection's frame among those sampled just before and after it, PNG.

        Raises:
            ValueError: the detection is in an image, not a video.
        """
        index = self._ready_index()
        self._check_row(index, row)
        record = self._record(index, row)
        if record['frame_time'] is None:
            raise ValueError(f'detection {row} is in an image '
                             f'({os.path.basename(record["file"])}), not a video: no frame strip')
        return exports.png(exports.frame_strip(record['file'], record['frame_time'],
                                               record['box'], self.fps))


def check_state_dir(state_dir: str, galleries: list[str]) -> None:
    """What a session checks of its state directory, for a command to check before it loads the
    model (which takes long): outside every gallery, and its marks.json (if any) readable.

    Raises:
        ValueError: either is not so.
    """
    for gallery in galleries:
        _check_outside(os.path.abspath(state_dir), gallery)
    Marks(os.path.join(state_dir, MARKS_FILE))


def _check_outside(state_dir: str, gallery: str) -> None:
    """Raises ValueError if `state_dir` lies in the folder `gallery` lists files from (its
    uploads would be indexed as gallery files)."""
    if os.path.isfile(gallery):
        return
    folder = gallery if os.path.isdir(gallery) else os.path.dirname(
        gallery.split('*')[0].split('?')[0].split('[')[0])
    folder = os.path.abspath(folder or '.')
    if os.path.commonpath([folder, state_dir]) == folder:
        raise ValueError(f'the state directory {state_dir} is inside gallery {gallery!r}: its '
                         f'uploads would be indexed as gallery files; give a state directory '
                         f'outside the galleries')


@functools.lru_cache(maxsize=256)
def _upload_embedding(searcher: Searcher, path: str, box: tuple[int, ...]) -> np.ndarray:
    """(E,) embedding of a box on an uploaded image, as `search.py --query_image --query_box`
    embeds it (cached: uploads never change, their names come from their content)."""
    embedding, _, _ = query_embedding(searcher, query_image=path,
                                      query_box=','.join(str(v) for v in box))
    return np.asarray(embedding, np.float32)


@functools.lru_cache(maxsize=64)
def _video_frame(path: str, fps: float, time: float) -> np.ndarray:
    best = None
    for frame_time, frame in video_frames(path, fps):
        if best is None or abs(frame_time - time) < abs(best[0] - time):
            best = (frame_time, frame)
        if frame_time > time:
            break
    if best is None:
        raise NotFound(f'{os.path.basename(path)} has no frame')
    return best[1]


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    stream = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(stream, format='JPEG', quality=quality)
    return stream.getvalue()
