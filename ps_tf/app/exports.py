"""What an operator takes away from a search: the hits as `search.py`'s hits.json, its contact
sheet (`ps_tf.search.contact_sheet`), and a strip of video frames around a hit."""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from ps_tf.search.media import video_frames

HIT_FIELDS = ('rank', 'detection', 'file', 'frame_time', 'box', 'score', 'similarity')   # rank()'s
STRIP_FRAMES_EACH_SIDE = 2


def hits_document(query_file: str, query_box: list, hits: list[dict],
                  warning: str | None) -> dict:
    """hits.json as `search.py` writes it (`ps_tf.search.pipeline.run`): the query file and box,
    the hits with `rank()`'s fields only (the app's file ids and marks stripped), the warning."""
    return {'query': os.path.abspath(query_file), 'query_box': [float(v) for v in query_box],
            'hits': [{field: hit[field] for field in HIT_FIELDS} for hit in hits],
            'warning': warning}


def png(image: Image.Image) -> bytes:
    stream = io.BytesIO()
    image.save(stream, format='PNG')
    return stream.getvalue()


def frame_strip(path: str, time: float, box, fps: float,
                each_side: int = STRIP_FRAMES_EACH_SIDE,
                tile_size: tuple[int, int] = (240, 180)) -> Image.Image:
    """The video's frames from `each_side` sampling steps (1/fps) before the hit's frame to as many
    after, in a row; the hit's frame has its box drawn, each frame its time.

    Sampled as indexing sampled (`video_frames` at `fps`), so the hit's own frame is one of them.

    Raises:
        ValueError: no frame near `time`.
    """
    from ps_tf.visualization import draw_annotations, image_grid

    reach = (each_side + 0.5) / fps
    tiles = []
    for frame_time, frame in video_frames(path, fps):
        if frame_time > time + reach:
            break
        if frame_time < time - reach:
            continue
        is_hit = abs(frame_time - time) < 0.5 / fps
        tiles.append(draw_annotations(
            frame, np.asarray([box]) if is_hit else np.zeros((0, 4)),
            title=f'{"hit " if is_hit else ""}{frame_time:.2f} s'))
    if not tiles:
        raise ValueError(f'{os.path.basename(path)} has no frame near {time:.2f} s')
    return image_grid(tiles, columns=len(tiles), tile_size=tile_size)
