"""What the web app serves: the galleries, their index (built in a background thread, with
progress) and searches over it. No web code here: `ps_tf.app.server` maps HTTP onto this.

The browser never names a file by path: files are addressed by their position in the sorted
gallery list and detections by their row in the index, so a request cannot reach anything
outside the configured galleries.
"""

from __future__ import annotations

import functools
import io
import os
import threading

import numpy as np
from PIL import Image

from ps_tf.search.media import IMAGE_TIME, is_video, list_gallery, read_image, video_frames
from ps_tf.search.ranking import rank
from ps_tf.search.searcher import Searcher, update_index


class NotFound(LookupError):
    """A file or detection the session does not hold."""


class GallerySession:
    """The galleries, their index and searches over it.

    Args:
        searcher: the model (`Searcher.load`).
        galleries: folders, globs or files (`list_gallery`).
        index_path: the index file, shared with `search.py` (reused and extended).
        fps: frames per second sampled from videos.
        min_score: detections scoring below this are neither shown nor ranked.
    """

    def __init__(self, searcher: Searcher, galleries: list[str], index_path: str,
                 fps: float = 1.0, min_score: float = 0.5):
        self.searcher, self.index_path = searcher, index_path
        self.fps, self.min_score = fps, min_score
        self.galleries: list[str] = []
        self.paths: list[str] = []
        self.index = None
        self._lock = threading.Lock()
        self._status = {'state': 'idle', 'done': 0, 'total': 0, 'error': None}
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
            ValueError: nothing to index there.
        """
        paths = list_gallery(gallery)
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
        self._set_status(state='indexing', done=0, total=0, error=None)
        try:
            index, _ = update_index(self.searcher, list(self.paths), self.index_path, self.fps,
                                    progress=False,
                                    on_file=lambda done, total: self._set_status(done=done,
                                                                                 total=total))
            with self._lock:
                self.index = index
            self._set_status(state='ready')
        except Exception as error:   # shown in the page; the app keeps serving
            self._set_status(state='error', error=f'{type(error).__name__}: {error}')

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
        with self._lock:
            detections = len(self.index) if self.index is not None else 0
            return {**self._status, 'files': len(self.paths), 'detections': detections}

    # ------------------------------------------------------------------ browsing
    def _ready_index(self):
        if self.index is None:
            raise NotFound('the gallery is still being indexed')
        return self.index

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
        if not 0 <= row < len(index):
            raise NotFound(f'no detection {row}')
        path = index.keys[index.detections['det_file'][row]].path
        detection = self._detection(index, row)
        image = self._pixels(path, detection['time'])
        x1, y1, x2, y2 = detection['box']
        margin_x, margin_y = 0.1 * (x2 - x1), 0.1 * (y2 - y1)
        top, left = max(0, int(y1 - margin_y)), max(0, int(x1 - margin_x))
        return image[top:int(np.ceil(y2 + margin_y)), left:int(np.ceil(x2 + margin_x))]

    # ------------------------------------------------------------------ search
    def search(self, row: int, top_k: int = 20, min_similarity: float = -1.0) -> dict:
        """The detections most like detection `row` (itself excluded), each with its file id."""
        index = self._ready_index()
        if not 0 <= row < len(index):
            raise NotFound(f'no detection {row}')
        if top_k < 1:
            raise ValueError(f'top_k must be >= 1, got {top_k}')
        query = index.detections['det_embeddings'][row].astype(np.float32)
        hits = [hit for hit in rank(index, self.paths, query, top_k + 1, self.min_score)
                if hit['detection'] != row and hit['similarity'] >= min_similarity][:top_k]
        ids = {path: i for i, path in enumerate(self.paths)}
        for position, hit in enumerate(hits):
            hit.update(rank=position + 1, file_id=ids[hit['file']],
                       name=os.path.basename(hit['file']))
        return {'query': self._detection(index, row), 'hits': hits}


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
