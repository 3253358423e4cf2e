"""Pictures of data and results: boxes with identity labels drawn on images, and image grids.

Used by the dataset preview, TensorBoard image summaries and the search contact sheet, so that a
person looks at the same drawing everywhere. Boxes are pixel x1, y1, x2, y2.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

PASSER_BY_COLOUR = (255, 230, 0)
IGNORE_COLOUR = (255, 40, 40)


def identity_colour(person_id: int) -> tuple[int, int, int]:
    """A bright colour fixed by the identity (golden-ratio hue steps keep neighbours apart)."""
    hue = (int(person_id) * 0.618033988749895) % 1.0
    h6 = hue * 6
    x = 1 - abs(h6 % 2 - 1)
    r, g, b = [(1, x, 0), (x, 1, 0), (0, 1, x), (0, x, 1), (x, 0, 1), (1, 0, x)][int(h6) % 6]
    return int(80 + 175 * r), int(80 + 175 * g), int(80 + 175 * b)


def draw_annotations(image: np.ndarray | Image.Image,
                     boxes_xyxy: np.ndarray,
                     person_ids: Sequence[int] | None = None,
                     ignore: Sequence[bool] | None = None,
                     scores: Sequence[float] | None = None,
                     highlight: np.ndarray | None = None,
                     title: str | None = None) -> Image.Image:
    """Draws boxes on a copy of `image`.

    Args:
        image: (H, W, 3) uint8 array or PIL image.
        boxes_xyxy: (K, 4) pixel x1, y1, x2, y2.
        person_ids: (K,) identities; -1 (no identity) is drawn in yellow and labelled "?".
        ignore: (K,) ignore-region flags, drawn in red and labelled "ignore".
        scores: (K,) detection scores, appended to the labels.
        highlight: (4,) one more box drawn thick in white (e.g. a query box).
        title: text written at the top left (e.g. the file name).

    Returns:
        The annotated PIL image.
    """
    canvas = (image.copy() if isinstance(image, Image.Image)
              else Image.fromarray(np.asarray(image, np.uint8))).convert('RGB')
    draw = ImageDraw.Draw(canvas)
    boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    for k, box in enumerate(boxes):
        is_ignored = ignore is not None and bool(ignore[k])
        person_id = -1 if person_ids is None else int(person_ids[k])
        if is_ignored:
            colour, label = IGNORE_COLOUR, 'ignore'
        elif person_id < 0:
            colour, label = PASSER_BY_COLOUR, '?' if person_ids is not None else ''
        else:
            colour, label = identity_colour(person_id), str(person_id)
        if scores is not None:
            label = f'{label} {float(scores[k]):.2f}'.strip()
        draw.rectangle(box.tolist(), outline=colour, width=2)
        if label:
            x, y = box[0], max(0.0, box[1] - 11)
            draw.rectangle([x, y, x + 6 * len(label) + 2, y + 10], fill=colour)
            draw.text((x + 1, y - 1), label, fill=(0, 0, 0))
    if highlight is not None:
        draw.rectangle(np.asarray(highlight, np.float64).tolist(), outline=(255, 255, 255),
                       width=4)
    if title:
        draw.rectangle([0, 0, 6 * len(title) + 4, 12], fill=(0, 0, 0))
        draw.text((2, 0), title, fill=(255, 255, 255))
    return canvas


def image_grid(images: Sequence[Image.Image], columns: int, tile_size: tuple[int, int],
               background: tuple[int, int, int] = (20, 20, 20)) -> Image.Image:
    """Lays images out in a grid, each scaled to fit `tile_size` (width, height) keeping its
    aspect ratio.

    Raises:
        ValueError: no images, or columns < 1.
    """
    if not images:
        raise ValueError('image_grid needs at least one image')
    if columns < 1:
        raise ValueError(f'columns must be >= 1, got {columns}')
    tile_w, tile_h = tile_size
    rows = -(-len(images) // columns)
    grid = Image.new('RGB', (columns * tile_w, rows * tile_h), background)
    for k, image in enumerate(images):
        scale = min(tile_w / image.width, tile_h / image.height)
        tile = image.resize((max(1, round(image.width * scale)),
                             max(1, round(image.height * scale))), Image.BILINEAR)
        grid.paste(tile, ((k % columns) * tile_w, (k // columns) * tile_h))
    return grid


def preview_examples(examples: Sequence[dict], columns: int = 4,
                     tile_size: tuple[int, int] = (384, 288)) -> Image.Image:
    """A grid of dataset examples (numpy dicts in the shared schema) with their boxes, identity
    labels and ignore regions drawn; query examples also show their query box in white."""
    tiles = []
    for example in examples:
        objects = example['objects']
        query = example.get('query')
        is_query = query is not None and int(query['person_id']) >= 0
        filename = example['image/filename']
        filename = filename.decode() if isinstance(filename, bytes) else str(filename)
        title = f'{filename} cam {int(example["camera_id"])}'
        if is_query:
            title += f' query {int(example["protocol_index"])} id {int(query["person_id"])}'
        tiles.append(draw_annotations(example['image'], objects['box'], objects['person_id'],
                                      objects['ignore'],
                                      highlight=query['box'] if is_query else None,
                                      title=title))
    return image_grid(tiles, columns=min(columns, len(tiles)), tile_size=tile_size)
