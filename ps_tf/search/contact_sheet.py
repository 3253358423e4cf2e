"""The contact sheet: the query and its hits, as one picture a person can check at a glance."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from ps_tf.search.media import read_image, video_frames


def contact_sheet(query_image: np.ndarray, query_box: np.ndarray, hits: list[dict], fps: float,
                  columns: int = 6, tile_size: tuple[int, int] = (240, 180)) -> Image.Image:
    """The query (box highlighted), then each hit's image or frame with its box, rank,
    similarity and detection score."""
    from ps_tf.visualization import draw_annotations, image_grid

    tiles = [draw_annotations(query_image, np.zeros((0, 4)), highlight=query_box, title='query')]
    frames = {}
    for path in {hit['file'] for hit in hits if hit['frame_time'] is not None}:
        wanted = {hit['frame_time'] for hit in hits if hit['file'] == path}
        frames.update({(path, t): f for t, f in video_frames(path, fps) if t in wanted})
    for hit in hits:
        image = (read_image(hit['file']) if hit['frame_time'] is None
                 else frames[(hit['file'], hit['frame_time'])])
        name = os.path.basename(hit['file'])
        if hit['frame_time'] is not None:
            name += f' @{hit["frame_time"]:.2f}s'
        tiles.append(draw_annotations(
            image, np.asarray([hit['box']]), scores=[hit['score']],
            title=f'#{hit["rank"]} sim {hit["similarity"]:.3f} {name}'))
    return image_grid(tiles, columns=min(columns, len(tiles)), tile_size=tile_size)
